"""After the runtime (the agent) restarts, ``attach`` finds the execution by its labels and follows it
to the end: events already in the event log are not repeated, observers resume from the seq they
acknowledged, and an execution whose pod vanished is closed as aborted."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shoal.execution._kubernetes import KubernetesRuntime
from shoal.kube import KubeClient
from tests.execution.kubernetes.kube_helpers import job_from_text, leftovers, needs_bwrap, stand_in_options
from tests.kubesim import KubeSim

SLOW = """
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: survives-restarts}
spec:
  steps:
  - name: first
    shell: echo one; echo two
  - name: waits
    shell: 'echo waiting; while [ ! -e /data/go ]; do sleep 0.05; done; echo released'
  - name: last
    run: {image: "alpine:3.19", shell: echo done}
"""


@needs_bwrap
async def test_attach_resumes_without_repeating_events(
    kubesim: KubeSim, kubeconfig_path: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    first = KubernetesRuntime(kubeconfig_path, home=home, options=stand_in_options())
    job = job_from_text(SLOW, tmp_path)
    handle = await first.start(job)
    acked = 0
    async for event in first.observe(handle):
        acked = event.seq
        if event.type == "log" and event.line == "waiting":
            break
    await first.close()  # the agent goes away; the pod runs on

    second = KubernetesRuntime(kubeconfig_path, home=home, options=stand_in_options())
    try:
        again = await second.attach(job.execution_id)
        assert again is not None
        resumed = []
        release = asyncio.get_running_loop().run_in_executor(None, _release, kubesim, job.execution_id)
        async for event in second.observe(again, from_seq=acked + 1):
            resumed.append(event)
        await release
        outcome = await second.wait(again)
    finally:
        await second.close()
    assert outcome.status == "passed"
    assert resumed and resumed[0].seq == acked + 1
    assert [e.seq for e in resumed] == list(range(acked + 1, acked + 1 + len(resumed)))
    lines = [e.line for e in resumed if e.type == "log"]
    assert "waiting" not in lines and "one" not in lines
    assert "released" in lines and "done" in lines
    assert kubesim.wait_until(lambda store: not leftovers(store, job.execution_id), timeout=10)


def _release(sim: KubeSim, execution_id: str) -> None:
    """Create /data/go inside the running pod (its /data emptyDir on the stand-in's disk)."""
    assert sim.wait_until(lambda store: bool(_data_dirs(sim, execution_id)), timeout=10)
    for path in _data_dirs(sim, execution_id):
        (path / "go").write_text("")


def _data_dirs(sim: KubeSim, execution_id: str) -> list[Path]:
    return [
        w.dir / "volumes" / "data"
        for w in list(sim.kubelet.workers.values())
        if w.name.startswith(execution_id) and (w.dir / "volumes" / "data").is_dir()
    ]


@needs_bwrap
async def test_attach_closes_an_execution_whose_pod_is_gone(
    kubesim: KubeSim, kubeconfig_path: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    first = KubernetesRuntime(kubeconfig_path, home=home, options=stand_in_options())
    job = job_from_text(SLOW, tmp_path)
    handle = await first.start(job)
    async for event in first.observe(handle):
        if event.type == "log" and event.line == "waiting":
            break
    await first.close()
    # someone deletes the Job and its pod while no agent watches
    client = KubeClient.from_kubeconfig(kubeconfig_path)
    await client.delete("Job", job.execution_id, namespace="default", grace_period=0, propagation="Foreground")
    await client.close()
    assert kubesim.wait_until(lambda store: not [o for o in leftovers(store, job.execution_id) if "Pod/" in o], 10)

    second = KubernetesRuntime(kubeconfig_path, home=home, options=stand_in_options())
    try:
        again = await second.attach(job.execution_id)
        assert again is not None
        outcome = await asyncio.wait_for(second.wait(again), 20)
    finally:
        await second.close()
    assert outcome.status == "aborted"
    statuses = {n.name: outcome.execution["result"]["steps"][n.ref]["status"] for n in job.plan.signature}
    assert statuses["first"] == "passed" and statuses["last"] == "skipped"
    assert await KubernetesRuntime(kubeconfig_path, home=tmp_path / "elsewhere").attach("0" * 24) is None
