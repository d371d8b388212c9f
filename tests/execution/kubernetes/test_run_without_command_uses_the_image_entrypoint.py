"""A `run` without `command` runs the image's ENTRYPOINT/CMD, read from its registry (a local one here);
without access to the registry the execution fails at initialization, naming the image and the
fields to set."""

from __future__ import annotations

from pathlib import Path

from shoal.execution._kubernetes import KubernetesRuntime
from shoal.kube import ImageInspector
from tests.execution.kubernetes.kube_helpers import (
    job_from_text,
    needs_bwrap,
    run_to_end,
    stand_in_options,
    step_logs,
)
from tests.kube.registry import serve_registry


def _workflow(image: str, args: str = "") -> str:
    return f"""
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {{name: entrypoint}}
spec:
  steps:
  - name: image default
    run: {{image: "{image}"{args}}}
"""


@needs_bwrap
async def test_the_image_entrypoint_and_cmd_run(kubeconfig_path: Path, tmp_path: Path) -> None:
    with serve_registry(bearer=True) as reg:
        reg.add_image("tools/echoer", "1", entrypoint=["/bin/echo"], cmd=["from", "cmd"],
                      platforms=("linux/amd64", "linux/arm64"))
        image = f"{reg.host}/tools/echoer:1"
        inspector = ImageInspector()
        runtime = KubernetesRuntime(kubeconfig_path, home=tmp_path / "home", options=stand_in_options(),
                                    inspector=inspector)
        try:
            events, outcome = await run_to_end(runtime, job_from_text(_workflow(image), tmp_path))
            assert outcome.status == "passed", outcome.execution["result"]
            assert ["from cmd"] in step_logs(events).values()
            # args replace CMD, the ENTRYPOINT stays; the config comes from the cache
            count = inspector.requests
            events, outcome = await run_to_end(runtime, job_from_text(_workflow(image, ", args: [given]"), tmp_path))
            assert outcome.status == "passed"
            assert ["given"] in step_logs(events).values()
            assert inspector.requests == count
        finally:
            await runtime.close()


async def test_without_the_registry_the_error_names_image_and_fields(kubeconfig_path: Path, tmp_path: Path) -> None:
    with serve_registry() as reg:
        host = reg.host  # a registry that is gone by the time the workflow runs
    image = f"{host}/tools/echoer:1"
    runtime = KubernetesRuntime(kubeconfig_path, home=tmp_path / "home", options=stand_in_options(),
                                inspector=ImageInspector(timeout=2))
    try:
        _, outcome = await run_to_end(runtime, job_from_text(_workflow(image), tmp_path))
    finally:
        await runtime.close()
    assert outcome.status == "failed"
    message = outcome.execution["result"]["initialization"]["errorMessage"]
    assert image in message and "command" in message and "args" in message
    assert "cannot reach the registry" in message
