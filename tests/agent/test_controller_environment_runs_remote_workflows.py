"""The "controller environment" pattern: a workflow in `ctrl` runs `smoke` in `pr-7` through an
`execute` step; the child's logs stream into the parent step, its artifacts are copied into the parent,
and all of it stays readable after `pr-7` is deleted."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from shoal.agent import Agent, AgentConfig
from tests.agent.fleet import call, eventually, finished
from tests.harness import RunningServer

SMOKE = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: smoke}
spec:
  steps:
  - name: check the cluster
    shell: |
      echo "smoke says hello from pr-7"
      mkdir -p /data/out && echo "smoke report" > /data/out/report.txt
    artifacts:
      paths: [/data/out/*]
"""

CTRL = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: ctrl-suite}
spec:
  steps:
  - name: run smoke in the PR environment
    execute:
      workflows:
      - name: smoke
        environment: pr-7
"""

pytestmark = pytest.mark.slow


async def test_parent_follows_child_in_another_environment_and_keeps_its_results(
    server: RunningServer, tmp_path: Path
) -> None:
    admin = server.client()
    await call(admin.create_environment, "ctrl")
    await call(admin.create_environment, "pr-7")
    ctrl = server.client(environment="ctrl")
    pr7 = server.client(environment="pr-7")
    await call(ctrl.apply, CTRL)
    await call(pr7.apply, SMOKE)
    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []
    for env, name in (("ctrl", "controller"), ("pr-7", "pr-7-agent")):
        token = await call(admin.create_token, "agent", env)
        stop = asyncio.Event()
        cfg = AgentConfig(server.url, token, name, {"cluster": env}, tmp_path / name, backoff_max_s=0.5)
        stops.append((stop, asyncio.create_task(Agent(cfg).run(stop))))
    try:
        parent = (await call(ctrl.run, "ctrl-suite"))[0]
        done = await eventually(lambda: finished(ctrl, [parent["id"]]), timeout=120, what="the parent run")
        assert done[0]["result"]["status"] == "passed", await call(ctrl.logs, parent["id"])
        children = (await call(pr7.executions, "smoke"))["results"]
        assert len(children) == 1 and children[0]["result"]["status"] == "passed"
        child = await call(pr7.execution, children[0]["id"])
        assert child["parentExecutionIds"] == [parent["id"]]
        assert child["runningContext"]["actor"]["type"] == "testworkflowexecution"
        logs = await call(ctrl.logs, parent["id"])
        assert "smoke says hello from pr-7" in logs
        await eventually(lambda: ctrl.artifacts(parent["id"]), what="the copied artifact")
        names = [a["name"] for a in await call(ctrl.artifacts, parent["id"])]
        child_names = [a["name"] for a in await call(pr7.artifacts, child["id"])]
        assert child_names and names == [f"{child['name']}/{n}" for n in child_names]

        await call(admin.delete_environment, "pr-7")
        assert "smoke says hello from pr-7" in await call(ctrl.logs, parent["id"])
        dest = tmp_path / "dl" / "report.txt"
        await call(ctrl.download_artifact, parent["id"], names[0], dest)
        assert dest.read_text() == "smoke report\n"
        assert (await call(ctrl.execution, parent["id"]))["result"]["status"] == "passed"
    finally:
        for stop, _task in stops:
            stop.set()
        for _stop, task in stops:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)
        for c in (admin, ctrl, pr7):
            c.close()


async def test_children_get_only_the_rights_of_whoever_started_the_parent(
    server: RunningServer, tmp_path: Path
) -> None:
    """A runner token confined to `ctrl` starts the suite: its child in `pr-7` is refused, so the step
    fails with the reason — the caller's permissions are checked, not the agent's."""
    from shoal.client import Client

    admin = server.client()
    await call(admin.create_environment, "ctrl")
    await call(admin.create_environment, "pr-7")
    with server.client(environment="ctrl") as c:
        await call(c.apply, CTRL)
    with server.client(environment="pr-7") as c:
        await call(c.apply, SMOKE)
    confined = await call(admin.create_token, "runner", "ctrl")
    token = await call(admin.create_token, "agent", "ctrl")
    stop = asyncio.Event()
    cfg = AgentConfig(server.url, token, "controller", {}, tmp_path / "controller", backoff_max_s=0.5)
    task = asyncio.create_task(Agent(cfg).run(stop))
    try:
        with Client(server.url, confined, "ctrl") as runner:
            parent = (await call(runner.run, "ctrl-suite"))[0]
            done = await eventually(lambda: finished(runner, [parent["id"]]), timeout=120, what="the parent")
            assert done[0]["result"]["status"] == "failed"
            assert "environment 'pr-7' not found" in await call(runner.logs, parent["id"])
        with server.client(environment="pr-7") as c:
            assert (await call(c.executions, "smoke"))["results"] == []
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        admin.close()
