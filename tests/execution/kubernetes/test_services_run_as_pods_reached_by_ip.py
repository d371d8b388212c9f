"""Services of a Kubernetes execution: the toolkit inside the execution pod starts every instance as a
Job and Pod of its own (``KubernetesSubPlans``), probes it at its pod's IP, publishes that IP as
``services.<name>.<i>.ip`` for the steps, and ``services-stop`` (in a later container: the one that
started the services has ended, and its supervisor with it) finds each instance by its labels, stops
it and keeps its whole log. Nothing of the services is left once the execution ends."""

from __future__ import annotations

from pathlib import Path

from shoal.execution._kubernetes import KubernetesRuntime
from shoal.execution._toolkit._probes import free_port
from tests.execution.kubernetes.kube_helpers import (
    ACCOUNT,
    executions_service_account,
    job_from_text,
    leftovers,
    needs_bwrap,
    run_to_end,
    stand_in_options,
    step_logs,
)
from tests.kubesim import KubeSim

WORKFLOW = """
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {{name: svc-on-kube}}
spec:
  services:
    web:
      description: "web server {{{{ index }}}}"
      logs: always
      timeout: 60s
      readinessProbe:
        tcpSocket: {{port: {port}}}
        periodSeconds: 1
        failureThreshold: 60
      shell: |
        mkdir -p /tmp/www && echo "hello from the service" > /tmp/www/index.html
        echo "web is starting"
        exec busybox httpd -f -vv -p 127.0.0.1:{port} -h /tmp/www
  steps:
  - name: call the service
    shell: |
      echo "service at {{{{ services.web.0.ip }}}}"
      wget -qO- "http://{{{{ services.web.0.ip }}}}:{port}/"
"""


@needs_bwrap
async def test_a_service_is_a_pod_reached_at_its_ip(kubesim: KubeSim, kubeconfig_path: Path, tmp_path: Path) -> None:
    await executions_service_account(kubeconfig_path)
    port = free_port()
    job = job_from_text(WORKFLOW.format(port=port), tmp_path)
    runtime = KubernetesRuntime(
        kubeconfig_path, home=tmp_path / "home",
        options=stand_in_options(artifacts_host_path=str(tmp_path / "artifacts"), service_account=ACCOUNT),
    )
    try:
        events, outcome = await run_to_end(runtime, job)
    finally:
        await runtime.close()
    doc = outcome.execution
    logs = step_logs(events)
    assert outcome.status == "passed", (doc["result"], logs)

    call = next(node["ref"] for node in doc["signature"] if node.get("name") == "call the service")
    # the stand-in gives every pod 127.0.0.1: the address came from the service pod's status.podIP
    assert "service at 127.0.0.1" in logs[call]
    assert "hello from the service" in logs[call]

    # the service ran as a Job of its own, created from inside the execution pod (its service account)
    created = [c for c in kubesim.call_log if c.verb == "create" and c.resource == "jobs" and c.code < 300]
    assert sorted(c.user for c in created) == ["kubesim-admin", f"system:serviceaccount:default:{ACCOUNT}"]

    # its supervisor ended with the container that started it: "Stop services" found the Job, stopped
    # it and kept its whole log (logs: always), from its first line to the request of the later step
    [stop] = [ref for ref, stage in job.plan.stages.items() if stage.kind == "services-stop"]
    assert "Service web #0 outlived its supervisor: stopping it where it runs" in logs[stop]
    [log] = [a for a in doc["artifacts"] if a["name"].startswith("logs/services/web-0")]
    kept = (Path(doc["artifactsDir"]) / log["name"]).read_text()
    assert "web is starting" in kept
    assert "url:/" in kept, kept  # busybox httpd -vv logs every request

    # nothing of the execution or its service remains
    assert leftovers(kubesim.store, job.execution_id) == []



ABORTED = """
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: svc-aborted}
spec:
  services:
    idle:
      shell: echo idling && exec sleep 300
  steps:
  - name: wait forever
    shell: echo waiting && sleep 300
"""


@needs_bwrap
async def test_an_aborted_execution_takes_its_services_with_it(
    kubesim: KubeSim, kubeconfig_path: Path, tmp_path: Path
) -> None:
    """Abort while a step runs: "Stop services" never runs, and the service's Job, pod, ConfigMap go
    with the execution all the same."""
    await executions_service_account(kubeconfig_path)
    job = job_from_text(ABORTED, tmp_path)
    runtime = KubernetesRuntime(kubeconfig_path, home=tmp_path / "home",
                                options=stand_in_options(service_account=ACCOUNT))
    try:
        handle = await runtime.start(job)
        seen = []
        async for event in runtime.observe(handle):
            seen.append((event.type, event.ref, event.status, event.line))
            if event.type == "log" and event.line == "waiting":
                break
        assert any(o["metadata"]["labels"].get("shoal.dev/role") == "worker"
                   for o in kubesim.list("jobs", "default")), ("the service's Job runs", seen)
        await runtime.stop(handle)
        outcome = await runtime.wait(handle)
    finally:
        await runtime.close()
    assert outcome.status == "aborted"
    assert kubesim.wait_until(lambda store: not leftovers(store, job.execution_id), 30), \
        leftovers(kubesim.store, job.execution_id)
