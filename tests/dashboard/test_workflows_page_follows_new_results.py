"""The workflows page reuses its aggregation only while no new run finished in the window."""

from __future__ import annotations

from shoal.store import now
from tests.dashboard.conftest import App


async def _finish(app: App, status: str, cluster: str) -> str:
    store = app.state.store
    env = await store.get_environment(app.state.organization.id, "default")
    ex = await store.create_execution(
        env.id,
        "smoke",
        workflow={"metadata": {"name": "smoke"}},
        status=status,
        agent_name=f"agent-{cluster}",
    )
    await store.update_execution(
        ex.id, agent_labels={"cluster": cluster}, finished_at=now(), duration_ms=1200
    )
    await store.record_facts(
        await store.get_execution(ex.id), [("r1", "unit", "failed")] if status == "failed" else []
    )
    return ex.id


async def test_a_new_result_shows_at_once_and_label_filters_apply(app: App) -> None:
    await _finish(app, "passed", "pr-1")
    web = await app.signed_in(await app.token("viewer"))
    page = (await web.get("/dashboard/envs/default/workflows?by=cluster")).text
    assert "100%" in page and "of 1" in page
    failed = await _finish(app, "failed", "pr-2")
    page = (await web.get("/dashboard/envs/default/workflows?by=cluster")).text
    assert "50%" in page and "of 2" in page and failed in page
    assert "unit" in page and "failed 1/2" in page  # flaky: failed once, the workflow also passed
    only = (await web.get("/dashboard/envs/default/workflows?by=cluster&label=cluster%3Dpr-1")).text
    assert "100%" in only and failed not in only
    failing = (await web.get("/dashboard/envs/default/workflows?status=failing")).text
    assert 'data-workflow="smoke"' in failing
    await web.aclose()


async def test_odd_group_keys_and_label_filters_are_ignored_not_errors(app: App) -> None:
    await _finish(app, "passed", "pr-1")
    web = await app.signed_in(await app.token("viewer"))
    for query in ('by=a"b', "by=%24.x", 'label=a"b%3Dc', "label=noequals", "window=99y"):
        r = await web.get(f"/dashboard/envs/default/workflows?{query}")
        assert r.status_code == 200 and 'data-workflow="smoke"' in r.text, query
    await web.aclose()
