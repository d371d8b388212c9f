"""The workflows overview and the clusters page in a real browser, with screenshots to look at."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from shoal.store._clusters import ClusterStore
from tests.agent.fakes import ScriptedRuntime
from tests.agent.fleet import Fleet, call, eventually, finished
from tests.dashboard.browser import browser_page, needs_chromium, shot_path
from tests.dashboard.conftest import FAILING_WF, WF, App
from tests.dashboard.test_browser_flows import _agents_online, _link
from tests.dashboard.test_clusters_page_reads_the_controller_source import _phase
from tests.harness import RunningServer

pytestmark = [pytest.mark.browser, needs_chromium]


async def test_workflows_overview_shows_status_per_cluster_trend_and_flaky_steps(
    server: RunningServer, fleet: Fleet
) -> None:
    fleet.start("alpha", {"cluster": "pr-101"}, ScriptedRuntime(lines=2))
    fleet.start("beta", {"cluster": "pr-102"}, ScriptedRuntime(lines=2, fail_steps=frozenset({"unit"})))
    fleet.start("gamma", {"cluster": "pr-103"}, ScriptedRuntime(lines=2))
    await _agents_online(server, 3)
    api = server.client()
    await call(api.apply, WF)
    await call(api.apply, FAILING_WF)
    ids: list[str] = []
    for _ in range(3):
        ids += [e["id"] for e in await call(api.run, "smoke", replicate=["cluster"])]
    ids += [e["id"] for e in await call(api.run, "broken")]
    await eventually(lambda: finished(api, ids), timeout=60, what="runs")
    async with browser_page() as page:
        p: Any = page
        await p.goto(await _link(server, path="/dashboard/envs/default/workflows"))
        row = p.locator('tr[data-workflow="smoke"]')
        await row.wait_for()
        assert await row.locator(".kv").count() == 3  # latest status on each of the three clusters
        assert await row.locator(".kv.bad").count() == 1  # pr-102 fails its unit step
        assert "unit" in await row.locator("td").nth(4).inner_text()  # flaky: fails on one cluster only
        assert await row.locator("svg.trend rect").count() == 9
        await p.get_by_label("Latest status").select_option("failed")
        await p.get_by_role("button", name="Apply").click()
        await p.wait_for_url("**status=failed**")
        assert await p.locator('tr[data-workflow="broken"]').count() == 1
        await p.goto(server.url + "/dashboard/envs/default/workflows")
        await p.screenshot(path=shot_path("workflows"), full_page=True)
        await p.get_by_role("link", name="smoke", exact=True).click()
        await p.get_by_role("heading", name="Per cluster").wait_for()
        await p.screenshot(path=shot_path("workflow_detail"), full_page=True)
    api.close()


async def test_clusters_page_with_controller_data(app: App) -> None:
    env = await app.state.store.get_environment(app.state.organization.id, "default")
    clusters = ClusterStore(app.state.store)
    await clusters.apply_class(env.id, "small", {"provisioner": "noop"})
    await clusters.apply_pool(env.id, "warm", {"classRef": "small", "size": 2, "maxSize": 5})
    await clusters.create_cluster(
        env.id,
        "pr-1234",
        "small",
        {"classRef": "small", "lifetime": "45m"},
        owner={"kind": "PipelineRun", "name": "build-1234"},
    )
    assert app.state.clusters is not None
    app.state.clusters.wake()
    await _phase(clusters, env.id, "pr-1234", "Ready")
    deadline = time.monotonic() + 20
    while (await ClusterStore(app.state.store).pool_counts(env.id, "warm"))["ready"] < 2:
        assert time.monotonic() < deadline, "the pool never filled"
        await asyncio.sleep(0.05)
    web = await app.signed_in(await app.token("runner"))
    session = web.cookies["shoal_session"]

    async def forward(route: Any) -> None:
        req = route.request
        headers = {k: v for k, v in req.headers.items() if k.lower() != "host"}
        async with app.client() as client:
            r = await client.request(req.method, req.url, headers=headers, content=req.post_data_buffer)
        await route.fulfill(status=r.status_code, headers=dict(r.headers), body=r.content)

    async with browser_page(color_scheme="dark") as page:
        p: Any = page
        await p.context.add_cookies(
            [{"name": "shoal_session", "value": session, "url": "http://testserver/dashboard"}]
        )
        await p.route("http://testserver/**", forward)
        await p.goto("http://testserver/dashboard/envs/default/clusters")
        await p.locator('tr[data-cluster="pr-1234"]').wait_for()
        assert "2" in await p.locator("#pools tbody tr td").nth(1).inner_text()  # two ready spares
        # The script turns the server's "in 44m" into a ticking "in 44m 59s".
        countdown = p.locator('tr[data-cluster="pr-1234"] time.countdown')
        await countdown.filter(has_text=re.compile(r"^in 4\dm \d+s$")).wait_for()
        await p.screenshot(path=shot_path("clusters_dark"), full_page=True)
        await p.locator('tr[data-cluster="pr-1234"]').get_by_role("button", name="Tear down").click()
        await p.locator('tr[data-cluster="pr-1234"]', has_text="teardown requested").wait_for()
    await web.aclose()
