"""The Testkube corpus workflows marked `local: true` run through KubernetesRuntime → the stand-in and
end exactly as with the local runtime (tests/conformance): the final status Testkube gives them and
the per-step statuses their steps imply. They run concurrently in one simulated cluster."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from shoal.execution import ExecutionOutcome
from shoal.execution._kubernetes import KubernetesRuntime
from shoal.workflow import ResolutionError
from tests.conformance.test_local_conformance import INIT_FAILURES, LOCAL, STEP_STATUSES
from tests.execution.kubernetes.kube_helpers import CORPUS, job_from_file, needs_bwrap, stand_in_options
from tests.kubesim import KubeSim

Result = ExecutionOutcome | ResolutionError


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    tmp = tmp_path_factory.mktemp("kube-conformance")

    async def main(sim: KubeSim) -> dict[str, Result]:
        runtime = KubernetesRuntime(
            sim.kubeconfig(tmp / "kubeconfig"), home=tmp / "home",
            options=stand_in_options(artifacts_host_path=str(tmp / "artifacts")),
        )

        async def one(entry: dict[str, Any]) -> tuple[str, Result]:
            try:
                job = job_from_file(CORPUS / entry["file"], name=entry["name"],
                                    templates=(CORPUS / "templates", CORPUS / "workflows"))
            except ResolutionError as exc:
                return entry["name"], exc
            handle = await runtime.start(job)
            return entry["name"], await runtime.wait(handle)

        try:
            return dict(await asyncio.gather(*(one(e) for e in LOCAL)))
        finally:
            await runtime.close()

    with KubeSim(job_backoff_base=0.2, restart_backoff=0.2, image_pull_backoff=0.2) as sim:
        return asyncio.run(main(sim))


@needs_bwrap
@pytest.mark.slow
@pytest.mark.parametrize("entry", LOCAL, ids=[w["name"] for w in LOCAL])
def test_workflow_ends_as_with_the_local_runtime(entry: dict[str, Any], outcomes: dict[str, Result]) -> None:
    name, expect = entry["name"], entry["expect"]
    result = outcomes[name]
    if isinstance(result, ResolutionError):
        # fails before anything reaches the cluster, as with the local runtime
        assert name in INIT_FAILURES and INIT_FAILURES[name] in str(result)
        return
    doc = result.execution["result"]
    assert result.status == expect, doc
    assert doc["predictedStatus"] == expect
    for ref, step in doc["steps"].items():
        assert step["status"] in ("passed", "failed", "timeout", "skipped", "aborted"), (ref, step)
    if name in INIT_FAILURES:
        assert doc["initialization"]["status"] == "failed"
        assert INIT_FAILURES[name] in doc["initialization"].get("errorMessage", "")
        return
    assert doc["initialization"]["status"] == "passed", doc["initialization"]
    top = [doc["steps"][node["ref"]]["status"] for node in result.execution["signature"]]
    if name in STEP_STATUSES:
        assert top == STEP_STATUSES[name]
    elif expect == "passed":
        assert all(s == "passed" for s in top), top


@needs_bwrap
@pytest.mark.slow
def test_artifacts_reach_the_node_directory(outcomes: dict[str, Result]) -> None:
    result = outcomes["special-cases-artifact-double-asterisk"]
    assert isinstance(result, ExecutionOutcome)
    names = sorted(a["name"] for a in result.execution["artifacts"])
    assert names == ["example/directory/aaa/bbb/file1.txt", "example/directory/aaa/bbb/file2.log"]
    folder = Path(result.execution["artifactsDir"])
    assert (folder / "example/directory/aaa/bbb/file1.txt").read_text() == "file1\n"
