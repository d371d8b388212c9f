"""Optional: the same run against a real cluster (``SHOAL_E2E_KUBECONFIG``), with the real shoal image
(``SHOAL_E2E_IMAGE``, default ghcr.io/shoal-dev/shoal:latest) and real images pulled from registries.
Skipped, saying why, when the variable is not set."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from shoal.execution._kubernetes import KubernetesOptions, KubernetesRuntime
from tests.execution.kubernetes.kube_helpers import job_from_text, run_to_end, step_logs

KUBECONFIG = os.environ.get("SHOAL_E2E_KUBECONFIG")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not KUBECONFIG, reason="SHOAL_E2E_KUBECONFIG is not set (no real cluster to run against)"),
]

WORKFLOW = """
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: e2e-kube}
spec:
  job: {namespace: "{{ config.namespace }}"}
  config:
    namespace: {type: string, default: default}
  steps:
  - name: busybox
    shell: echo from busybox > /data/x; cat /data/x
  - name: alpine
    run: {image: "alpine:3.19", shell: "cat /data/x; echo in alpine"}
  - name: entrypoint
    run: {image: "hello-world:latest"}
"""


async def test_a_workflow_runs_on_a_real_cluster(tmp_path: Path) -> None:
    namespace = os.environ.get("SHOAL_E2E_NAMESPACE", "default")
    options = KubernetesOptions(namespace=namespace, image=os.environ.get("SHOAL_E2E_IMAGE", KubernetesOptions().image))
    runtime = KubernetesRuntime(KUBECONFIG, home=tmp_path / "home", options=options)
    try:
        job = job_from_text(WORKFLOW, tmp_path, {"namespace": namespace})
        events, outcome = await asyncio.wait_for(run_to_end(runtime, job), 600)
    finally:
        await runtime.close()
    assert outcome.status == "passed", outcome.execution["result"]
    lines = [line for chunk in step_logs(events).values() for line in chunk]
    assert "from busybox" in lines and "in alpine" in lines
    assert any("Hello from Docker!" in line for line in lines)
