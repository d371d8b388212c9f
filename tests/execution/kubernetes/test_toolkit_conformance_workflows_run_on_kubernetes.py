"""The Testkube corpus workflows that need parallel workers and services (and nothing the stand-in
lacks) run through KubernetesRuntime → the stand-in, the toolkit inside each execution pod starting the
workers and service instances as Jobs of their own, and end as with the local runtime
(tests/conformance): the final status Testkube gives them, every top-level step passed when it passes,
a failing non-optional step when it fails, and nothing of them left in the cluster."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shoal.execution import ExecutionOutcome
from shoal.execution._kubernetes import KubernetesRuntime
from tests.conformance.test_local_conformance import TOOLKIT
from tests.execution.kubernetes.kube_helpers import (
    ACCOUNT,
    CORPUS,
    executions_service_account,
    job_from_file,
    leftovers,
    needs_bwrap,
    stand_in_options,
)
from tests.kubesim import KubeSim


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ExecutionOutcome, list[str], list[str]]]:
    tmp = tmp_path_factory.mktemp("kube-toolkit-conformance")

    async def main(sim: KubeSim) -> dict[str, tuple[ExecutionOutcome, list[str], list[str]]]:
        kubeconfig = sim.kubeconfig(tmp / "kubeconfig")
        await executions_service_account(kubeconfig)
        # A pod waits for room on the one simulated node as in a real cluster, rather than failing at once.
        runtime = KubernetesRuntime(kubeconfig, home=tmp / "home", options=stand_in_options(service_account=ACCOUNT),
                                    unschedulable_grace=120)

        # A few at a time: the simulated node has the host's CPUs (2 on CI) and every pod requests some;
        # running parents holding the room their own workers wait for would deadlock, as on a real node.
        room = asyncio.Semaphore(2)

        async def one(entry: dict[str, Any]) -> tuple[str, tuple[ExecutionOutcome, list[str], list[str]]]:
            async with room:
                return await run(entry)

        async def run(entry: dict[str, Any]) -> tuple[str, tuple[ExecutionOutcome, list[str], list[str]]]:
            job = job_from_file(CORPUS / entry["file"], name=entry["name"],
                                templates=(CORPUS / "templates", CORPUS / "workflows"))
            handle = await runtime.start(job)
            outcome = await runtime.wait(handle)
            said = [f"{e.ref}: {e.line if e.type == 'log' else f'{e.type} {e.status}: {e.details}'}"
                    async for e in runtime.observe(handle) if e.type == "log" or e.details]
            ok = await asyncio.to_thread(sim.wait_until, lambda store: not leftovers(store, job.execution_id), 30)
            return entry["name"], (outcome, [] if ok else leftovers(sim.store, job.execution_id), said)

        try:
            return dict(await asyncio.gather(*(one(e) for e in TOOLKIT)))
        finally:
            await runtime.close()

    with KubeSim(job_backoff_base=0.2, restart_backoff=0.2, image_pull_backoff=0.2) as sim:
        return asyncio.run(main(sim))


@needs_bwrap
@pytest.mark.slow
@pytest.mark.parametrize("entry", TOOLKIT, ids=[w["name"] for w in TOOLKIT])
def test_workflow_ends_as_with_the_local_runtime(
    entry: dict[str, Any], outcomes: dict[str, tuple[ExecutionOutcome, list[str], list[str]]]
) -> None:
    outcome, left, said = outcomes[entry["name"]]
    doc = outcome.execution
    result = doc["result"]
    assert outcome.status == entry["expect"], "\n".join(said[-40:])
    assert result["initialization"]["status"] == "passed", result["initialization"]
    top = [(node, result["steps"][node["ref"]]["status"]) for node in doc["signature"]]
    if entry["expect"] == "passed":
        assert all(status == "passed" for _, status in top), top
    else:
        assert any(status in ("failed", "timeout") and not node.get("optional") for node, status in top), top
    assert left == [], f"left in the cluster: {left}"
