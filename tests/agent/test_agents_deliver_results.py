"""Agents connect to an environment, take runs routed to them and deliver every event exactly once."""

from __future__ import annotations

import asyncio

from tests.agent.fakes import ScriptedRuntime
from tests.agent.fleet import Fleet, call, eventually, finished
from tests.harness import RunningServer

WF = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: smoke}
spec:
  steps:
  - {name: first, shell: "echo one"}
  - {name: second, shell: "echo two"}
"""


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
