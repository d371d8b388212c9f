"""Fixtures for dashboard tests: a real server in a thread, in-process agents, signed-in HTTP clients."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from shoal.server import ServerSettings, ServerState, create_app
from tests.agent.fleet import Fleet, call
from tests.harness import RunningServer, server_in_thread

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "dashboard"

WF = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: smoke, labels: {team: core}}
spec:
  config:
    region: {type: string, default: eu-west-1}
    password: {type: string, sensitive: true}
  steps:
  - {name: checkout, shell: "echo checkout"}
  - {name: unit, shell: "echo unit"}
  - {name: integration, shell: "echo integration"}
"""

# Nested steps (the scripted runtime reports top-level steps only, so runs of this one end aborted).
NESTED_WF = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: nested}
spec:
  steps:
  - {name: checkout, shell: "echo checkout"}
  - name: suite
    steps:
    - {name: unit, shell: "echo unit"}
    - {name: integration, shell: "echo integration"}
"""

FAILING_WF = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: broken}
spec:
  steps:
  - {name: prepare, shell: "echo prepare"}
  - {name: fail-on-purpose, shell: "exit 1"}
"""

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = _CSRF.search(html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def sign_in(base_url: str, token: str) -> httpx.Client:
    """An HTTP client holding a dashboard session of ``token`` (through the sign-in form)."""
    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=30)
    form = client.get("/dashboard/login")
    assert form.status_code == 200
    r = client.post(
        "/dashboard/login",
        data={"token": token, "csrf": csrf_of(form.text), "next": "/dashboard/envs"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/envs", r.text
    assert "shoal_session" in client.cookies
    return client


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    settings = {
        "agent_grace_s": 1.0,
        "agent_timeout_s": 3.0,
        "sweep_interval_s": 0.2,
        "heartbeat_interval_s": 0.5,
    }
    with server_in_thread(tmp_path / "home", **settings) as srv:
        yield srv


@pytest.fixture
async def fleet(server: RunningServer, tmp_path: Path) -> AsyncIterator[Fleet]:
    admin = server.client()
    token = await call(admin.create_token, "agent", "default")
    admin.close()
    f = Fleet(server, token, tmp_path / "agents")
    try:
        yield f
    finally:
        with contextlib.suppress(Exception):
            await f.stop_all()


class App:
    """The app in this process (no sockets): direct access to its state for arranging data."""

    def __init__(self, app: FastAPI, state: ServerState) -> None:
        self.app, self.state = app, state

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://testserver", timeout=30
        )

    async def token(self, role: str, env: str | None = None) -> str:
        env_id = (await self.state.store.get_environment(self.state.organization.id, env)).id if env else None
        _token, plaintext = await self.state.store.create_token(self.state.organization.id, env_id, role)
        return plaintext

    async def signed_in(self, token: str) -> httpx.AsyncClient:
        client = self.client()
        form = await client.get("/dashboard/login")
        r = await client.post("/dashboard/login", data={"token": token, "csrf": csrf_of(form.text)})
        assert r.status_code == 303, r.text
        return client


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    settings = ServerSettings(home=tmp_path / "home", print_admin_token=False)
    fastapi_app = create_app(settings)
    state = await ServerState.start(settings)
    fastapi_app.state.shoal = state
    try:
        yield App(fastapi_app, state)
    finally:
        await state.stop()
