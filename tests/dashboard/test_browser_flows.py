"""The dashboard in a real (headless) browser: sign in, follow live logs, open a failed step, download an
artifact, abort a run. Each test saves a screenshot under test-output/dashboard/."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import TimeoutError as PlaywrightTimeout

from tests.agent.fakes import ScriptedRuntime
from tests.agent.fleet import Fleet, call, eventually, finished
from tests.dashboard.browser import browser_page, needs_chromium, shot_path
from tests.dashboard.conftest import FAILING_WF, WF
from tests.harness import RunningServer

pytestmark = [pytest.mark.browser, needs_chromium]


async def _link(server: RunningServer, path: str | None = None, execution: str | None = None) -> str:
    api = server.client()
    body: dict[str, Any] = {}
    if path:
        body["path"] = path
    if execution:
        body["executionId"] = execution
    url = str((await call(api._json, "POST", "/v1/dashboard/links", json=body))["url"])
    api.close()
    return url


async def _agents_online(server: RunningServer, n: int) -> None:
    api = server.client()
    await eventually(
        lambda: len([a for a in api.agents() if a["status"] == "online"]) == n, what=f"{n} agents"
    )
    api.close()


async def test_sign_in_with_a_token_and_open_an_environment_with_three_agents(
    server: RunningServer, fleet: Fleet
) -> None:
    for name, cluster in (("alpha", "pr-101"), ("beta", "pr-102"), ("gamma", "pr-103")):
        fleet.start(name, {"cluster": cluster, "kind": "kubernetes"})
    await _agents_online(server, 3)
    api = server.client()
    await call(api.apply, WF)
    await call(api.run, "smoke", match={"cluster": ["pr-999"]})  # waits: nobody matches
    done = await call(api.run, "smoke", replicate=["cluster"])
    await eventually(lambda: finished(api, [e["id"] for e in done]), what="replicated run")
    api.close()
    async with browser_page() as page:
        p: Any = page
        await p.goto(server.url + "/dashboard/")
        await p.wait_for_url("**/dashboard/login**")
        await p.screenshot(path=shot_path("sign_in_form"))
        await p.get_by_label("API token").fill(server.admin_token)
        await p.get_by_role("button", name="Sign in").click()
        await p.wait_for_url("**/dashboard/envs/default")
        rows = p.locator("#agents tbody tr")
        await rows.first.wait_for()
        assert await rows.count() == 3
        for cluster in ("pr-101", "pr-102", "pr-103"):
            assert await p.locator("#agents").get_by_text(cluster).count() == 1
        assert await p.locator("#queued").get_by_text("no online agent matches cluster=pr-999").count() == 1
        await p.screenshot(path=shot_path("sign_in_environment"), full_page=True)


async def test_follow_a_running_execution_live_logs_until_it_passes(
    server: RunningServer, fleet: Fleet
) -> None:
    gate = asyncio.Event()
    fleet.start("runner", {"cluster": "pr-7"}, ScriptedRuntime(lines=40, gate=gate))
    await _agents_online(server, 1)
    api = server.client()
    await call(api.apply, WF)
    ex = (await call(api.run, "smoke"))[0]
    await eventually(lambda: api.execution(ex["id"])["result"]["status"] == "running", what="running")
    async with browser_page() as page:
        p: Any = page
        await p.goto(await _link(server, execution=ex["id"]))
        await p.wait_for_url(f"**/executions/{ex['id']}")
        assert await p.locator("#ex-status").inner_text() == "running"
        await p.get_by_text("Following the live logs").wait_for()
        gate.set()  # the held step goes on: lines stream in while the page is open
        # The scripted runtime prints 40 lines for each step (checkout, unit, integration).
        await p.locator("#log .line", has_text="integration line 40").wait_for()
        await p.locator("#ex-status", has_text="passed").wait_for()
        assert await p.locator("#log .line").count() == 120
        await p.get_by_label("Search the logs").fill("line 40")
        await p.locator("#log-count", has_text="3 of 120 lines match").wait_for()
        await p.screenshot(path=shot_path("live_logs_passed"), full_page=True)
    api.close()


async def test_open_a_failed_step_shows_its_status_and_only_its_logs(
    server: RunningServer, fleet: Fleet
) -> None:
    fleet.start("runner", {"cluster": "pr-8"}, ScriptedRuntime(lines=5))
    await _agents_online(server, 1)
    api = server.client()
    await call(api.apply, FAILING_WF)
    ex = (await call(api.run, "broken"))[0]
    await eventually(lambda: finished(api, [ex["id"]]), what="failed run")
    async with browser_page(color_scheme="dark") as page:
        p: Any = page
        await p.goto(await _link(server, execution=ex["id"]))
        await p.locator("#ex-status", has_text="failed").wait_for()
        await p.locator("#ex-steps").get_by_role("link", name="fail-on-purpose").click()
        detail = p.locator("#step-detail")
        await detail.wait_for()
        assert "failed" in await detail.inner_text()
        assert "1" in await detail.locator("dd").nth(1).inner_text()  # exit code
        await p.locator("#log .line", has_text="fail-on-purpose line 5").wait_for()
        visible = await p.locator("#log .line:not([hidden])").all_inner_texts()
        assert visible and all("fail-on-purpose" in line for line in visible)
        await p.screenshot(path=shot_path("failed_step_dark"), full_page=True)
    api.close()


async def test_download_an_artifact(server: RunningServer, fleet: Fleet, tmp_path: Path) -> None:
    fleet.start("runner", {"cluster": "pr-9"}, ScriptedRuntime(lines=2, artifacts_root=tmp_path / "arts"))
    await _agents_online(server, 1)
    api = server.client()
    await call(api.apply, WF)
    ex = (await call(api.run, "smoke"))[0]
    await eventually(lambda: finished(api, [ex["id"]]) and api.artifacts(ex["id"]), what="artifact")
    async with browser_page() as page:
        p: Any = page
        await p.goto(await _link(server, execution=ex["id"]))
        download = await _click_download(p, p.locator("#artifacts").get_by_role("link", name="report.txt"))
        saved = tmp_path / "downloaded.txt"
        await download.save_as(saved)
        assert saved.read_text() == f"report of {ex['id']}\n"
        await p.screenshot(path=shot_path("artifact_download"), full_page=True)
    api.close()


async def _click_download(page: Any, link: Any) -> Any:
    """Click a download link. The page's live refresh may swap the artifacts table while the click
    lands (a click on the outgoing element starts nothing): click the new one then."""
    for attempt in range(3):
        try:
            async with page.expect_download(timeout=10_000) as info:
                await link.click()
            return await info.value
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def test_abort_a_running_execution(server: RunningServer, fleet: Fleet) -> None:
    gate = asyncio.Event()
    fleet.start("runner", {"cluster": "pr-10"}, ScriptedRuntime(lines=3, gate=gate))
    await _agents_online(server, 1)
    api = server.client()
    await call(api.apply, WF)
    ex = (await call(api.run, "smoke"))[0]
    await eventually(lambda: api.execution(ex["id"])["result"]["status"] == "running", what="running")
    async with browser_page() as page:
        p: Any = page
        await p.goto(await _link(server, execution=ex["id"]))
        await p.get_by_role("button", name="Abort").click()  # the confirmation dialog is accepted
        await p.locator("#ex-status", has_text="aborted").wait_for(timeout=30000)
        assert await p.get_by_role("button", name="Abort").count() == 0
        await p.screenshot(path=shot_path("aborted"), full_page=True)
    assert (await call(api.execution, ex["id"]))["result"]["status"] == "aborted"
    api.close()
