"""A workflow run through KubernetesRuntime → the stand-in ends like the local runtime: same step
statuses, exit codes, log lines per step and outputs; every object is deleted at the end; the number
of API calls does not grow with the number of steps, and nothing polls."""

from __future__ import annotations

from pathlib import Path

from shoal.execution import LocalRuntime
from shoal.execution._kubernetes import KubernetesRuntime
from tests.execution.kubernetes.kube_helpers import (
    job_from_text,
    leftovers,
    needs_bwrap,
    run_to_end,
    step_logs,
)
from tests.kubesim import KubeSim

WORKFLOW = """
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: like-local}
spec:
  config:
    token: {type: string, sensitive: true, default: sup3r-secret}
  content:
    files:
    - {path: /data/input.txt, content: "from a file"}
  steps:
  - name: greet
    shell: |
      cat /data/input.txt; echo
      echo "token=$TOKEN"
      echo 42 > /testkube/outputs/answer
    id: greet
    container:
      env: [{name: TOKEN, value: "{{ config.token }}"}]
  - name: other image
    run: {image: "alpine:3.19", shell: "echo in alpine; echo shared > /data/shared.txt"}
  - name: optional failure
    shell: echo failing; exit 3
    optional: true
  - name: retried
    shell: echo attempt; exit 1
    retry: {count: 1}
    optional: true
  - name: reads shared
    run: {image: "python:3.12", shell: "cat /data/shared.txt"}
  - name: skipped
    shell: echo never
    condition: failed
"""


@needs_bwrap
async def test_kubernetes_and_local_runtimes_agree(
    runtime: KubernetesRuntime, kubesim: KubeSim, tmp_path: Path
) -> None:
    job = job_from_text(WORKFLOW, tmp_path)
    kube_events, kube = await run_to_end(runtime, job)
    local_job = job_from_text(WORKFLOW, tmp_path)
    local_events, local = await run_to_end(LocalRuntime(tmp_path / "local-home"), local_job)  # type: ignore[arg-type]
    assert kube.status == local.status == "passed"
    kube_steps, local_steps = kube.execution["result"]["steps"], local.execution["result"]["steps"]
    assert {r: (s["status"], s.get("exitCode")) for r, s in kube_steps.items()} == {
        r: (s["status"], s.get("exitCode")) for r, s in local_steps.items()
    }
    assert step_logs(kube_events) == step_logs(local_events)
    assert kube.execution["output"] == local.execution["output"]
    logs = "\n".join(line for lines in step_logs(kube_events).values() for line in lines)
    assert "sup3r-secret" not in logs and "from a file" in logs and "shared" in logs
    assert [e.seq for e in kube_events] == list(range(1, len(kube_events) + 1))
    statuses = [e.status for e in kube_events if e.type == "status"]
    assert statuses == ["scheduling", "running", "passed"]
    # everything the execution created is gone (the pod goes with its Job, by garbage collection)
    assert kubesim.wait_until(lambda store: not leftovers(store, job.execution_id), timeout=10), leftovers(
        kubesim.store, job.execution_id
    )


def _merged(steps: int) -> str:
    body = "\n".join(f"  - shell: echo step {i}\n    pure: true" for i in range(steps))
    return f"""
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {{name: many-{steps}}}
spec:
  steps:
{body}
"""


@needs_bwrap
async def test_api_calls_do_not_grow_with_the_number_of_steps(
    runtime: KubernetesRuntime, kubesim: KubeSim, tmp_path: Path
) -> None:
    counts = []
    for steps in (3, 60):
        kubesim.reset_calls()
        _, outcome = await run_to_end(runtime, job_from_text(_merged(steps), tmp_path))
        assert outcome.status == "passed"
        assert len(outcome.execution["result"]["steps"]) == steps
        calls = dict(kubesim.calls)
        assert ("list", "pods") not in calls and ("get", "pods") not in calls  # a watch, no polling
        counts.append(sum(calls.values()))
    assert counts[0] == counts[1]
    assert counts[0] <= 10
