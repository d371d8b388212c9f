"""Job retries within backoffLimit, fails with BackoffLimitExceeded or DeadlineExceeded, and expires by TTL."""

from __future__ import annotations

import time

from lightkube import AsyncClient
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod

from tests.kubesim import KubeSim
from tests.kubesim._testkit import alive, container, job, running_tree


async def test_failed_pods_are_retried_up_to_the_backoff_limit(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(job("flaky", [container("main", "exit 1")], backoff_limit=2), namespace="default")
    done = await client.wait(Job, "flaky", namespace="default", for_conditions=["Failed", "Complete"])
    assert done.status is not None and done.status.failed == 3 and not done.status.succeeded
    failed = {c.type: c for c in done.status.conditions or []}["Failed"]
    assert (failed.reason, failed.message) == ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    pods = [p async for p in client.list(Pod, namespace="default", labels={"job-name": "flaky"})]
    assert len(pods) == 3 and {p.status.phase for p in pods} == {"Failed"}  # type: ignore[union-attr]
    # the tracking finalizer is released once the Job controller has counted each pod
    assert all(not p.metadata.finalizers for p in pods)  # type: ignore[union-attr]
    created = sorted(p.metadata.creationTimestamp for p in pods)  # type: ignore[union-attr,type-var]
    assert created[0] <= created[1] <= created[2]


async def test_active_deadline_kills_the_pod_and_fails_the_job(client: AsyncClient, kubesim: KubeSim) -> None:
    marker = kubesim.root / "deadline-started"
    script = f"trap 'exit 143' TERM; touch {marker}; sleep 1000 & wait"
    await client.create(job("slow", [container("main", script)], activeDeadlineSeconds=1), namespace="default")
    started = time.monotonic()
    tree = running_tree(kubesim)
    done = await client.wait(Job, "slow", namespace="default", for_conditions=["Failed", "Complete"])
    assert time.monotonic() - started >= 0.9
    conds = {c.type: c for c in done.status.conditions or []}  # type: ignore[union-attr]
    assert conds["Failed"].reason == "DeadlineExceeded"
    assert conds["FailureTarget"].reason == "DeadlineExceeded"
    assert not alive(tree)


async def test_a_finished_job_is_deleted_after_its_ttl(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(job("short-lived", [container("main", "true")], ttlSecondsAfterFinished=0),
                        namespace="default")
    assert kubesim.wait_until(lambda _: kubesim.get("jobs", "default", "short-lived") is not None, 10)
    assert kubesim.wait_until(lambda _: kubesim.get("jobs", "default", "short-lived") is None, 10)
    assert kubesim.wait_until(lambda _: not kubesim.list("pods", "default"), 10)


async def test_pod_restart_policy_on_failure_restarts_the_container(client: AsyncClient, kubesim: KubeSim) -> None:
    counter = kubesim.root / "attempts"
    script = f"echo x >> {counter}; [ $(wc -l < {counter}) -ge 2 ]"
    j = job("again", [container("main", script)])
    j.spec.template.spec.restartPolicy = "OnFailure"  # type: ignore[union-attr]
    await client.create(j, namespace="default")
    done = await client.wait(Job, "again", namespace="default", for_conditions=["Failed", "Complete"])
    assert done.status is not None and done.status.succeeded == 1
    [p] = [p async for p in client.list(Pod, namespace="default", labels={"job-name": "again"})]
    status = (p.status.containerStatuses or [])[0]  # type: ignore[union-attr]
    assert status.restartCount == 1
    assert status.lastState is not None and status.lastState.terminated is not None
    assert status.lastState.terminated.exitCode == 1
