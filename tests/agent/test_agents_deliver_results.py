"""Agents connect to an environment, take runs routed to them and deliver every event exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from shoal.agent import Agent, AgentConfig
from shoal.client import Client
from tests.agent.fakes import ScriptedRuntime
from tests.harness import RunningServer, server_in_thread

WF = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: smoke}
spec:
  steps:
  - {name: first, shell: "echo one"}
  - {name: second, shell: "echo two"}
"""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    with server_in_thread(
        tmp_path / "home",
        agent_grace_s=1.0,
        agent_timeout_s=3.0,
        sweep_interval_s=0.2,
        heartbeat_interval_s=0.5,
    ) as srv:
        yield srv


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: last {value!r}")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.25)


class Fleet:
    """Agents running as tasks of the test's event loop."""

    def __init__(self, server: RunningServer, token: str, root: Path) -> None:
        self.server, self.token, self.root = server, token, root
        self.tasks: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self.runtimes: dict[str, ScriptedRuntime] = {}

    def start(
        self, name: str, labels: dict[str, str], runtime: ScriptedRuntime | None = None
    ) -> ScriptedRuntime:
        runtime = runtime or self.runtimes.get(name) or ScriptedRuntime()
        self.runtimes[name] = runtime
        cfg = AgentConfig(self.server.url, self.token, name, labels, self.root / name, backoff_max_s=0.5)
        stop = asyncio.Event()
        task = asyncio.create_task(Agent(cfg, runtime).run(stop))
        self.tasks[name] = (task, stop)
        return runtime

    async def stop(self, name: str) -> None:
        task, stop = self.tasks.pop(name)
        stop.set()
        await asyncio.wait_for(task, 30)

    async def stop_all(self) -> None:
        for name in list(self.tasks):
            await self.stop(name)


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


def finished(client: Client, ids: list[str]) -> list[dict[str, Any]] | None:
    got = [client.execution(i) for i in ids]
    done = all(e["result"]["status"] in ("passed", "failed", "aborted", "canceled") for e in got)
    return got if done else None


async def test_replicated_run_goes_to_every_cluster_and_results_outlive_the_agents(
    server: RunningServer, fleet: Fleet
) -> None:
    client = server.client()
    await call(client.apply, WF)
    for name in ("a", "b", "c"):
        fleet.start(f"agent-{name}", {"cluster": name})
    await eventually(
        lambda: len([a for a in client.agents() if a["status"] == "online"]) == 3, what="3 agents"
    )
    created = await call(client.run, "smoke", replicate=["cluster"])
    assert len(created) == 3 and len({e["groupId"] for e in created}) == 1
    done = await eventually(lambda: finished(client, [e["id"] for e in created]), what="3 executions")
    assert sorted(e["runner"] for e in done) == ["agent-a", "agent-b", "agent-c"]
    assert all(e["result"]["status"] == "passed" for e in done)
    assert sorted(e["runnerLabels"]["cluster"] for e in done) == ["a", "b", "c"]
    logs = await call(client.logs, done[0]["id"])
    assert logs.splitlines() == [f"{s} line {i}" for s in ("first", "second") for i in (1, 2, 3)]

    await fleet.stop_all()
    await eventually(lambda: all(a["status"] == "offline" for a in client.agents()), what="agents offline")
    assert {e["id"] for e in (await call(client.executions, "smoke"))["results"]} == {
        e["id"] for e in created
    }

    fleet.start("agent-d", {"cluster": "d"})  # a brand-new agent runs the stored workflow: no re-apply
    again = (await call(client.run, "smoke"))[0]
    result = await eventually(lambda: finished(client, [again["id"]]), what="run on the new agent")
    assert result[0]["runner"] == "agent-d" and result[0]["result"]["status"] == "passed"
    client.close()


async def test_queued_run_starts_when_a_matching_agent_connects(server: RunningServer, fleet: Fleet) -> None:
    client = server.client()
    await call(client.apply, WF)
    ex = (await call(client.run, "smoke", match={"cluster": ["late"]}))[0]
    assert (await call(client.execution, ex["id"]))["queueReason"] == "no online agent matches cluster=late"
    fleet.start("other", {"cluster": "early"})
    await eventually(lambda: any(a["status"] == "online" for a in client.agents()), what="agent online")
    assert (await call(client.execution, ex["id"]))["result"]["status"] == "queued"
    fleet.start("late-agent", {"cluster": "late"})
    done = await eventually(lambda: finished(client, [ex["id"]]), what="the queued run")
    assert done[0]["runner"] == "late-agent"
    client.close()


async def test_events_buffered_while_disconnected_arrive_once_in_order(
    server: RunningServer, fleet: Fleet
) -> None:
    client = server.client()
    await call(client.apply, WF)
    gate = asyncio.Event()
    runtime = fleet.start("solo", {}, ScriptedRuntime(lines=2000, gate=gate))
    ex = (await call(client.run, "smoke"))[0]
    await eventually(lambda: runtime.started, what="the run to start")
    await fleet.stop("solo")  # disconnect while the execution is held at its first step
    gate.set()  # the execution goes on producing events with nobody connected
    await eventually(lambda: runtime.runs[ex["id"]].done.is_set(), what="the scripted run to end")
    fleet.start("solo", {}, runtime)  # reconnect: the outbox replays from the server's ack
    done = await eventually(lambda: finished(client, [ex["id"]]), what="delivery after reconnect")
    assert done[0]["result"]["status"] == "passed"
    lines = (await call(client.logs, ex["id"])).splitlines()
    assert lines == [f"{s} line {i}" for s in ("first", "second") for i in range(1, 2001)]
    client.close()


async def test_abort_reaches_the_agent(server: RunningServer, fleet: Fleet) -> None:
    client = server.client()
    await call(client.apply, WF)
    gate = asyncio.Event()
    runtime = fleet.start("solo", {}, ScriptedRuntime(gate=gate))
    ex = (await call(client.run, "smoke"))[0]
    await eventually(lambda: runtime.started, what="the run to start")
    await call(client.control, ex["id"], "abort")
    done = await eventually(lambda: finished(client, [ex["id"]]), what="the aborted run")
    assert done[0]["result"]["status"] == "aborted"
    client.close()


async def test_runs_of_a_vanished_agent_end_aborted_after_the_grace_period(
    server: RunningServer, fleet: Fleet
) -> None:
    client = server.client()
    await call(client.apply, WF)
    gate = asyncio.Event()
    runtime = fleet.start("ghost", {}, ScriptedRuntime(gate=gate))
    ex = (await call(client.run, "smoke"))[0]
    await eventually(lambda: runtime.started, what="the run to start")
    await eventually(lambda: client.execution(ex["id"])["result"]["status"] == "running", what="running")
    await fleet.stop("ghost")
    done = await eventually(lambda: finished(client, [ex["id"]]), what="finalisation after the grace period")
    assert done[0]["result"]["status"] == "aborted"
    gate.set()
    client.close()
