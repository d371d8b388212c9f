"""Aggregation across clusters and retention by count, with a server, agents and a blob store."""

from __future__ import annotations

from pathlib import Path

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


async def test_summary_by_cluster_lists_latest_status_pass_rate_and_failing_steps(
    server: RunningServer, fleet: Fleet
) -> None:
    client = server.client()
    await call(client.apply, WF)
    fleet.start("agent-a", {"cluster": "a"})
    fleet.start("agent-b", {"cluster": "b"})
    fleet.start("agent-c", {"cluster": "c"}, ScriptedRuntime(fail_steps=frozenset({"second"})))
    await eventually(lambda: len([a for a in client.agents() if a["status"] == "online"]) == 3, what="agents")
    ids: list[str] = []
    for _ in range(2):
        created = await call(client.run, "smoke", replicate=["cluster"])
        ids += [e["id"] for e in created]
        await eventually(lambda ids=list(ids): finished(client, ids), what="the round of runs")
    await eventually(
        lambda: (
            client._json("GET", "/v1/test-workflows/smoke/metrics", params={"by": "cluster"})["totals"][
                "executions"
            ]
            == 6
        ),
        what="facts of all six runs",
    )
    metrics = await call(client._json, "GET", "/v1/test-workflows/smoke/metrics", params={"by": "cluster"})
    rows = {r["key"]: r for r in metrics["rows"]}
    assert sorted(rows) == ["a", "b", "c"]
    assert (rows["a"]["latestStatus"], rows["a"]["passRate"], rows["a"]["executions"]) == ("passed", 1.0, 2)
    assert (rows["c"]["latestStatus"], rows["c"]["passRate"]) == ("failed", 0.0)
    assert metrics["totals"]["passRate"] == round(4 / 6, 4)
    assert metrics["steps"][0]["name"] == "second" and metrics["steps"][0]["by"] == {"c": 2}
    assert len(metrics["groups"]) == 2 and all(g["executions"] == 3 for g in metrics["groups"])
    by_agent = await call(client._json, "GET", "/v1/test-workflows/smoke/metrics")
    assert sorted(r["key"] for r in by_agent["rows"]) == ["agent-a", "agent-b", "agent-c"]
    client.close()


async def test_retain_count_keeps_the_newest_executions_their_logs_and_artifacts(
    server: RunningServer, fleet: Fleet, tmp_path: Path
) -> None:
    client = server.client()
    await call(client.apply, WF)
    fleet.start("solo", {}, ScriptedRuntime(artifacts_root=tmp_path / "arts"))
    ids: list[str] = []
    for _ in range(20):
        ids += [e["id"] for e in await call(client.run, "smoke")]
    await eventually(lambda: finished(client, ids), timeout=60, what="20 runs")
    await eventually(lambda: all(client.artifacts(i) for i in ids[-5:]), what="artifacts uploaded")
    await call(client.update_environment, "default", None, 5)
    await eventually(lambda: len(client.all_executions("smoke")) == 5, what="pruning to 5")
    kept = {e["id"] for e in await call(client.all_executions, "smoke")}
    assert kept == set(ids[-5:])
    blobs = server.home / "blobs" / "executions"
    await eventually(lambda: {p.name for p in blobs.iterdir()} == kept, what="blobs of pruned runs gone")
    for execution_id in kept:
        assert (await call(client.logs, execution_id)).startswith("first line 1")
        assert [a["name"] for a in await call(client.artifacts, execution_id)] == ["report.txt"]
    metrics = await call(client._json, "GET", "/v1/test-workflows/smoke/metrics")
    assert metrics["totals"]["executions"] == 20  # the figures still cover every run in the window
    client.close()
