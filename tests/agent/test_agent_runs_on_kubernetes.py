"""An agent with the Kubernetes runtime, against the cluster stand-in: server → agent → Job/Pod →
logs and results back, the same as with the local runtime."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shoal.agent import Agent, AgentConfig
from shoal.execution._kubernetes import KubernetesRuntime
from tests.agent.fleet import call, eventually, finished
from tests.execution.kubernetes.kube_helpers import stand_in_options
from tests.harness import RunningServer
from tests.kubesim import KubeSim

WF = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: on-kube}
spec:
  steps:
  - name: greet
    shell: echo "hello from a pod"
  - name: fail on purpose
    optional: true
    shell: exit 3
"""


async def test_agent_runs_a_workflow_as_a_job_in_the_stand_in(server: RunningServer, tmp_path: Path) -> None:
    client = server.client()
    await call(client.apply, WF)
    token = await call(client.create_token, "agent", "default")
    with KubeSim(job_backoff_base=0.2, restart_backoff=0.2, image_pull_backoff=0.2) as sim:
        kubeconfig = sim.kubeconfig(tmp_path / "kubeconfig")
        runtime = KubernetesRuntime(
            kubeconfig, home=tmp_path / "kube-home", options=stand_in_options(agent="k8s")
        )
        cfg = AgentConfig(
            server.url, token, "k8s", {"kind": "kubernetes"}, tmp_path / "agent", capabilities=["kubernetes"]
        )
        stop = asyncio.Event()
        task = asyncio.create_task(Agent(cfg, runtime).run(stop))
        try:
            ex = (await call(client.run, "on-kube"))[0]
            done = await eventually(
                lambda: finished(client, [ex["id"]]), timeout=120, what="the run on the stand-in"
            )
            assert done[0]["result"]["status"] == "passed"
            steps = {s["name"]: done[0]["result"]["steps"][s["ref"]]["status"] for s in done[0]["signature"]}
            assert steps == {"greet": "passed", "fail on purpose": "failed"}
            assert "hello from a pod" in await call(client.logs, ex["id"])
            agents = await call(client.agents)
            assert agents[0]["capabilities"] == ["kubernetes"]
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
            await runtime.close()
    client.close()
