"""Aborting deletes the pod (the init program prints its abort markers) and ends `aborted`; pod-level
failures — an image that cannot be pulled, a pod that cannot be scheduled, a pod deadline — end as
clear errors on the step (or the initialization) they stopped; nothing is left behind."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from shoal.execution._kubernetes import KubernetesRuntime
from tests.execution.kubernetes.kube_helpers import (
    job_from_text,
    leftovers,
    needs_bwrap,
    run_to_end,
    stand_in_options,
)
from tests.kubesim import KubeSim

HEAD = "kind: TestWorkflow\napiVersion: testworkflows.testkube.io/v1\nmetadata: {name: failing}\nspec:\n"


@needs_bwrap
async def test_stop_aborts_the_running_step_and_skips_the_rest(
    runtime: KubernetesRuntime, kubesim: KubeSim, tmp_path: Path
) -> None:
    job = job_from_text(HEAD + "  steps:\n  - shell: echo started; sleep 60\n  - shell: echo never\n", tmp_path)
    handle = await runtime.start(job)
    seen = []
    async for event in runtime.observe(handle):
        seen.append(event)
        if event.type == "log" and event.line == "started":
            break
    await asyncio.wait_for(runtime.stop(handle, grace=1), 20)
    outcome = await runtime.wait(handle)
    assert outcome.status == "aborted"
    steps = outcome.execution["result"]["steps"]
    first, second = (steps[n.ref] for n in job.plan.signature)
    assert first["status"] == "aborted" and second["status"] == "skipped"
    assert kubesim.wait_until(lambda store: not leftovers(store, job.execution_id), timeout=10)
    assert not kubesim.processes()


@needs_bwrap
async def test_an_image_that_cannot_be_pulled_fails_its_step(
    runtime: KubernetesRuntime, kubesim: KubeSim, tmp_path: Path
) -> None:
    job = job_from_text(
        HEAD + "  steps:\n  - shell: echo first\n"
        "  - run: {image: 'example.com/nothing:does-not-exist', shell: echo second}\n  - shell: echo third\n",
        tmp_path,
    )
    _, outcome = await asyncio.wait_for(run_to_end(runtime, job), 30)
    assert outcome.status == "failed"
    steps = outcome.execution["result"]["steps"]
    first, second, third = (steps[n.ref] for n in job.plan.signature)
    assert first["status"] == "passed"
    assert second["status"] == "failed"
    assert "example.com/nothing:does-not-exist" in second["errorMessage"]
    assert "pull" in second["errorMessage"]
    assert third["status"] == "skipped"
    assert kubesim.wait_until(lambda store: not leftovers(store, job.execution_id), timeout=10)


@needs_bwrap
async def test_an_unschedulable_pod_fails_the_initialization_with_the_reason(
    runtime: KubernetesRuntime, kubesim: KubeSim, tmp_path: Path
) -> None:
    job = job_from_text(HEAD + "  pod: {nodeSelector: {pool: gpu}}\n  steps:\n  - shell: echo hi\n", tmp_path)
    _, outcome = await asyncio.wait_for(run_to_end(runtime, job), 30)
    assert outcome.status == "failed"
    init = outcome.execution["result"]["initialization"]
    assert init["status"] == "failed" and "cannot be scheduled" in init["errorMessage"]
    assert "selector" in init["errorMessage"] or "affinity" in init["errorMessage"]
    assert all(s["status"] == "skipped" for s in outcome.execution["result"]["steps"].values())
    assert kubesim.wait_until(lambda store: not leftovers(store, job.execution_id), timeout=10)


@needs_bwrap
async def test_a_pod_deadline_aborts_with_the_reason(runtime: KubernetesRuntime, tmp_path: Path) -> None:
    job = job_from_text(HEAD + "  pod: {activeDeadlineSeconds: 1}\n  steps:\n  - shell: sleep 30\n", tmp_path)
    events, outcome = await asyncio.wait_for(run_to_end(runtime, job), 30)
    assert outcome.status == "aborted"
    (step,) = outcome.execution["result"]["steps"].values()
    assert step["status"] == "aborted"
    reasons = [e.details or "" for e in events if e.type == "status" and e.status == "aborted"]
    assert any("pod.activeDeadlineSeconds" in r for r in reasons), reasons


@needs_bwrap
async def test_an_unschedulable_pod_waits_for_a_node_within_the_grace(
    kubeconfig_path: Path, kubesim: KubeSim, tmp_path: Path
) -> None:
    """With ``unschedulable_grace`` (a cluster autoscaler adding a node) the pod may still be scheduled."""
    from tests.kubesim._apiserver import NODES
    from tests.kubesim._kubelet import NODE_NAME

    runtime = KubernetesRuntime(kubeconfig_path, home=tmp_path / "home", options=stand_in_options(),
                                unschedulable_grace=20)
    job = job_from_text(HEAD + "  pod: {nodeSelector: {pool: late}}\n  steps:\n  - shell: echo scheduled\n", tmp_path)
    try:
        handle = await runtime.start(job)
        assert await kubesim.wait_for(
            lambda store: any(
                c.get("reason") == "Unschedulable"
                for rt, o in store.all_in_namespace("default") if rt.kind == "Pod"
                for c in (o.get("status") or {}).get("conditions") or []
            ),
            timeout=10,
        )

        def add_label(node: dict[str, Any]) -> None:
            node["metadata"].setdefault("labels", {})["pool"] = "late"

        kubesim.call(lambda: kubesim.api.mutate(NODES, "", NODE_NAME, add_label))
        outcome = await asyncio.wait_for(runtime.wait(handle), 30)
    finally:
        await runtime.close()
    assert outcome.status == "passed", outcome.execution["result"]
