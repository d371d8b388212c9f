"""What stops a pod (image pulls, scheduling, OOM kills, evictions, deadlines) is read from its status
as one clear sentence; names and label values made from user text are always valid."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shoal.kube import dns_label, job_failure, label_value, pod_problem, termination_problem


def _pod(status: dict[str, Any], containers: tuple[str, ...] = ("1",)) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": n, "image": f"img-{n}:1"} for n in containers]}, "status": status}


def test_image_pull_errors_name_the_image_and_the_container() -> None:
    pod = _pod({"containerStatuses": [{"name": "1", "state": {"waiting": {
        "reason": "ImagePullBackOff", "message": 'Back-off pulling image "img-1:1"'}}}]})
    problem = pod_problem(pod)
    assert problem is not None and problem.fatal
    assert problem.container == "1" and "img-1:1" in problem.message and "ImagePullBackOff" in problem.message


def test_unschedulable_pods_carry_the_scheduler_message() -> None:
    pod = _pod({"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."}]})
    problem = pod_problem(pod)
    assert problem is not None and problem.reason == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in problem.message


def test_evictions_and_deadlines_are_pod_level() -> None:
    evicted = pod_problem(_pod({"phase": "Failed", "reason": "Evicted",
                                "message": "The node was low on resource: memory."}))
    assert evicted is not None and "evicted" in evicted.message and "low on resource" in evicted.message
    deadline = pod_problem(_pod({"phase": "Failed", "reason": "DeadlineExceeded"}))
    assert deadline is not None and "activeDeadlineSeconds" in deadline.message


def test_oom_killed_containers_say_so() -> None:
    pod = _pod({"containerStatuses": [{"name": "1", "state": {"terminated": {
        "exitCode": 137, "reason": "OOMKilled"}}}]})
    problem = termination_problem(pod, "1")
    assert problem is not None and "OOMKilled" in problem.message
    ok = _pod({"containerStatuses": [{"name": "1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]})
    assert termination_problem(ok, "1") is None
    running = _pod({"containerStatuses": [{"name": "1", "state": {"running": {}}}]})
    assert termination_problem(running, "1") is None and pod_problem(running) is None


def test_job_deadlines_are_reported() -> None:
    job = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}}
    problem = job_failure(job)
    assert problem is not None and "job.activeDeadlineSeconds" in problem.message
    assert job_failure({"status": {}}) is None


_DNS = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


@given(st.text(min_size=0, max_size=200))
def test_names_and_label_values_are_always_valid(text: str) -> None:
    name = dns_label(text)
    assert len(name) <= 63 and _DNS.fullmatch(name)
    value = label_value(text)
    assert len(value) <= 63 and _VALUE.fullmatch(value)
    if _DNS.fullmatch(text) and len(text) <= 63:
        assert name == text
