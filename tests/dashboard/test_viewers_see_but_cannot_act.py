"""Roles in the dashboard: viewers read everything in scope, only run-capable tokens abort or re-run, and an
environment-scoped token never sees another environment."""

from __future__ import annotations

from shoal.store import Execution
from tests.dashboard.conftest import App, csrf_of


async def _running(app: App, env: str = "default") -> Execution:
    state = app.state
    env_row = await state.store.get_environment(state.organization.id, env)
    ex = await state.store.create_execution(
        env_row.id, "smoke", workflow={"metadata": {"name": "smoke"}, "spec": {}}, queue_reason="no agent"
    )
    return ex


async def test_a_viewer_gets_no_buttons_and_its_forms_are_refused(app: App) -> None:
    ex = await _running(app)
    viewer = await app.signed_in(await app.token("viewer"))
    page = await viewer.get(f"/dashboard/envs/default/executions/{ex.id}")
    assert page.status_code == 200 and "no agent" in page.text
    assert ">Abort<" not in page.text and ">Run again<" not in page.text
    csrf = csrf_of((await viewer.get("/dashboard/envs")).text)
    r = await viewer.post(f"/dashboard/envs/default/executions/{ex.id}/abort", data={"csrf": csrf})
    assert r.status_code == 403 and "viewer token may not" in r.text
    assert (await app.state.store.get_execution(ex.id)).status == "queued"

    runner = await app.signed_in(await app.token("runner"))
    page = await runner.get(f"/dashboard/envs/default/executions/{ex.id}")
    assert ">Abort<" in page.text
    r = await runner.post(
        f"/dashboard/envs/default/executions/{ex.id}/abort", data={"csrf": csrf_of(page.text)}
    )
    assert r.status_code == 303 and r.headers["location"].endswith(ex.id)
    assert (await app.state.store.get_execution(ex.id)).status == "aborted"
    r = await viewer.post(f"/dashboard/envs/default/executions/{ex.id}/rerun", data={"csrf": csrf})
    assert r.status_code == 403
    await viewer.aclose()
    await runner.aclose()


async def test_an_environment_scoped_token_sees_only_its_environment(app: App) -> None:
    await app.state.store.create_environment(app.state.organization.id, "staging")
    hidden = await _running(app, "default")
    visible = await _running(app, "staging")
    web = await app.signed_in(await app.token("viewer", "staging"))
    envs = await web.get("/dashboard/envs")
    assert "staging" in envs.text and ">default<" not in envs.text
    assert (await web.get("/dashboard/envs/default")).status_code == 404
    assert (await web.get(f"/dashboard/envs/staging/executions/{visible.id}")).status_code == 200
    assert (await web.get(f"/dashboard/envs/staging/executions/{hidden.id}")).status_code == 404
    assert (await web.get(f"/dashboard/envs/default/executions/{hidden.id}")).status_code == 404
    home = await web.get("/dashboard/")
    assert home.headers["location"] == "/dashboard/envs/staging"
    await web.aclose()
