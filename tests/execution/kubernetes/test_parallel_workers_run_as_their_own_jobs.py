"""Parallel workers started by the toolkit inside an execution pod run as Jobs of their own
(``KubernetesSubPlans``): the resource id ``<parent>-<ref>-<n>``, the root execution's labels, the
parent's options; transferred files reach the worker; every container tells the toolkit which runtime
it is in."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from shoal.execution import ExecutionJob
from shoal.execution._kubernetes import KubernetesSubPlans, options_to_json, render_execution
from shoal.execution._toolkit._subplans import SubJob
from shoal.kube import LABEL_EXECUTION, LABEL_RESOURCE, dns_label
from shoal.workflow import compile_worker
from tests.execution.kubernetes.kube_helpers import job_from_text, needs_bwrap, stand_in_options
from tests.kubesim import KubeSim

PARENT = """
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: fan-out}
spec:
  steps:
  - name: fan out
    parallel:
      count: 2
      shell: 'echo "worker {{ index }} of {{ count }}"; cat /data/in/x.txt'
"""


@needs_bwrap
async def test_a_worker_runs_as_its_own_job(kubesim: KubeSim, kubeconfig_path: Path, tmp_path: Path) -> None:
    parent = job_from_text(PARENT, tmp_path)
    ref = next(r for r, s in parent.plan.stages.items() if s.kind == "parallel")
    options = stand_in_options(extra_env={"KUBECONFIG": str(kubeconfig_path)})
    env = {"SHOAL_KUBE_OPTIONS": options_to_json(options, "default"), "KUBECONFIG": str(kubeconfig_path)}
    runner = KubernetesSubPlans(env)
    lines: list[str] = []
    records: list[tuple[str, dict[str, Any]]] = []
    statuses = []
    for index in range(2):
        plan = compile_worker(parent.plan, ref, index)
        job = SubJob(execution_id=f"{parent.execution_id}-{ref}-w{index}", plan=plan,
                     workspace=tmp_path / f"worker-{index}")
        mounts = runner.prepare(job)
        (mounts.host("/data/in")).mkdir(parents=True)
        (mounts.host("/data/in") / "x.txt").write_text(f"transferred to {index}\n")
        kubesim.reset_calls()
        status = await asyncio.to_thread(
            runner.run, job, lines.append, threading.Event(), lambda kind, data: records.append((kind, data))
        )
        statuses.append(status)
        assert kubesim.calls[("create", "jobs")] == 1
        doc = json.loads((job.workspace / "home" / "executions" / job.execution_id / "execution.json").read_text())
        assert doc["runtime"]["job"] == dns_label(str(plan.context["resource_id"]))
        assert doc["runtime"]["job"] == f"{parent.execution_id}-{ref}-{index}"
    assert statuses == ["passed", "passed"]
    assert "worker 0 of 2" in lines and "worker 1 of 2" in lines
    assert "transferred to 0" in lines and "transferred to 1" in lines
    assert any(kind == "started" for kind, _ in records)
    # where a service instance is reached: its pod's IP (the stand-in's pods all have 127.0.0.1)
    assert ("address", {"ip": "127.0.0.1"}) in records

    rendered = render_execution(parent, options)
    worker_plan = compile_worker(parent.plan, ref, 1)
    worker = render_execution(ExecutionJob(execution_id=str(worker_plan.context["resource_id"]), plan=worker_plan),
                              options)
    labels = worker.job["metadata"]["labels"]
    assert labels[LABEL_EXECUTION] == parent.execution_id
    assert labels[LABEL_RESOURCE] == worker.resource_id != parent.execution_id
    env_names = {e["name"] for e in rendered.job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"SHOAL_RUNTIME", "SHOAL_KUBE_OPTIONS"} <= env_names
