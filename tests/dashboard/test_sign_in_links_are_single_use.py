"""`POST /v1/dashboard/links` and `shoal dashboard link`: short-lived, single-use, hashed sign-in links."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import httpx
import typer
from sqlalchemy import select, update
from typer.testing import CliRunner

from shoal.cli import _dashboard_cmd
from shoal.store import now
from shoal.store._models import Token
from tests.dashboard.conftest import App
from tests.harness import RunningServer, server_in_thread


async def _link(app: App, token: str, **body: str) -> dict[str, str]:
    async with app.client() as api:
        r = await api.post("/v1/dashboard/links", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    data: dict[str, str] = r.json()
    return data


async def test_a_link_signs_in_once_and_opens_the_page(app: App) -> None:
    env = await app.state.store.get_environment(app.state.organization.id, "default")
    ex = await app.state.store.create_execution(env.id, "smoke", workflow={"metadata": {"name": "smoke"}})
    viewer = await app.token("viewer")
    data = await _link(app, viewer, executionId=ex.id)
    assert data["path"] == f"/dashboard/envs/default/executions/{ex.id}"
    url = urlparse(data["url"])
    secret = url.path.rsplit("/", 1)[-1]
    stored = [t for t in await _tokens(app) if t.role == "dashboard-link"]
    assert len(stored) == 1 and secret not in stored[0].hash  # only a keyed digest is kept
    async with app.client() as api:  # the secret is no API token
        r = await api.get("/v1/environments", headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 401
    async with app.client() as browser:
        r = await browser.get(f"{url.path}?{url.query}")
        assert r.status_code == 303 and r.headers["location"] == data["path"]
        page = await browser.get(data["path"])
        assert page.status_code == 200 and ex.name in page.text
        assert ">viewer<" in page.text  # the session carries the creator's role
    async with app.client() as second:
        again = await second.get(f"{url.path}?{url.query}")
        assert again.status_code == 403 and "used already" in again.text


async def test_expired_links_and_foreign_redirects_are_refused(app: App) -> None:
    admin = await app.token("admin")
    data = await _link(app, admin, path="https://evil.example/")
    assert data["path"] == "/dashboard/"
    url = urlparse(data["url"])
    async with app.state.store.session() as s:
        await s.execute(
            update(Token)
            .where(Token.role == "dashboard-link")
            .values(expires_at=now() - timedelta(seconds=1))
        )
    async with app.client() as browser:
        r = await browser.get(f"{url.path}?{url.query}")
        assert r.status_code == 403
    fresh = urlparse((await _link(app, admin))["url"])
    async with app.client() as browser:
        r = await browser.get(f"{fresh.path}?next=//evil.example/x")
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/"


async def _tokens(app: App) -> list[Token]:
    async with app.state.store.session() as s:
        return list((await s.execute(select(Token))).scalars())


def test_the_cli_prints_a_link_for_an_execution(tmp_path: Path) -> None:
    with server_in_thread(tmp_path / "home") as srv:
        _cli_link(srv)


def _cli_link(srv: RunningServer) -> None:
    api = srv.client()
    api.apply(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata: {name: one}\n"
        "spec: {steps: [{name: a, shell: 'true'}]}\n"
    )
    ex = api.run("one")[0]
    api.close()
    cli = typer.Typer()
    cli.command("noop")(lambda: None)
    _dashboard_cmd.register(cli)
    result = CliRunner().invoke(
        cli, ["dashboard", "link", "--execution", ex["id"], "--server", srv.url, "--token", srv.admin_token]
    )
    assert result.exit_code == 0, result.output
    url = result.stdout.strip().splitlines()[0]
    assert url.startswith(f"{srv.url}/dashboard/link/")
    with httpx.Client() as browser:
        r = browser.get(url, follow_redirects=True)
        assert r.status_code == 200 and ex["name"] in r.text
        assert browser.get(url).status_code == 403
    bad = CliRunner().invoke(
        cli, ["dashboard", "link", "--execution", "nope", "--server", srv.url, "--token", srv.admin_token]
    )
    assert bad.exit_code == 1 and "not found" in bad.output
