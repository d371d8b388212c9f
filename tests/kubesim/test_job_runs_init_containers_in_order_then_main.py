"""A Job's pod runs its init containers one after another, then the main container, with real volumes."""

from __future__ import annotations

from lightkube import AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, Secret

from tests.kubesim import KubeSim
from tests.kubesim._testkit import container, job

SHARED = {"name": "shared", "mountPath": "/.shoal"}


async def _wait_job_finished(client: AsyncClient, name: str, namespace: str) -> Job:
    return await client.wait(Job, name, namespace=namespace, for_conditions=["Complete", "Failed"])


async def test_init_containers_run_in_order_and_share_an_empty_dir(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(Namespace(metadata=ObjectMeta(name="exec-1")))
    await client.create(ConfigMap(metadata=ObjectMeta(name="settings"), data={"greeting": "hello"}),
                        namespace="exec-1")
    await client.create(Secret(metadata=ObjectMeta(name="creds"), stringData={"token": "s3cret"}),
                        namespace="exec-1")
    init = [
        # the first init container is slow: if the second started before it ended, the order would break
        container("first", "sleep 0.2; echo first >> /.shoal/order", volumeMounts=[SHARED]),
        container("second", "echo second >> /.shoal/order", volumeMounts=[SHARED]),
    ]
    main = container(
        "main",
        'cat /.shoal/order; echo "greeting=$GREETING token=$TOKEN pod=$POD_NAME ns=$POD_NS"; cat /config/greeting',
        volumeMounts=[SHARED, {"name": "config", "mountPath": "/config"}],
        env=[{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
             {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
             {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
    )
    await client.create(job("run", [main], init=init, volumes=[
        {"name": "shared", "emptyDir": {}}, {"name": "config", "configMap": {"name": "settings"}}]),
        namespace="exec-1")

    finished = await _wait_job_finished(client, "run", "exec-1")
    assert finished.status is not None and finished.status.succeeded == 1
    assert [c.type for c in finished.status.conditions or []] == ["Complete"]

    pods = [p async for p in client.list(Pod, namespace="exec-1", labels={"job-name": "run"})]
    assert len(pods) == 1
    pod = pods[0]
    assert pod.metadata is not None and pod.metadata.name is not None
    assert pod.metadata.name.startswith("run-") and len(pod.metadata.name) == len("run-") + 5
    assert pod.metadata.labels is not None and pod.metadata.labels["controller-uid"] == finished.metadata.uid
    assert pod.metadata.ownerReferences and pod.metadata.ownerReferences[0].kind == "Job"
    assert pod.status is not None and pod.status.phase == "Succeeded"
    assert pod.spec is not None and pod.spec.nodeName == "kubesim-node"
    inits = pod.status.initContainerStatuses or []
    assert [(s.name, s.state.terminated.exitCode) for s in inits if s.state and s.state.terminated] == [
        ("first", 0), ("second", 0)]
    assert all(s.ready and not s.started for s in inits)  # completed init containers: ready, not started
    first_end = inits[0].state.terminated.finishedAt  # type: ignore[union-attr]
    second_start = inits[1].state.terminated.startedAt  # type: ignore[union-attr]
    assert first_end <= second_start

    lines = [line async for line in client.log(pod.metadata.name, namespace="exec-1", container="main")]
    assert lines == ["first\n", "second\n",
                     f"greeting=hello token=s3cret pod={pod.metadata.name} ns=exec-1\n", "hello\n"]


async def test_a_failing_init_container_fails_the_pod_and_skips_the_rest(client: AsyncClient) -> None:
    init = [container("breaks", "echo broken; exit 3"), container("never", "echo should-not-run")]
    await client.create(job("broken", [container("main", "echo main")], init=init), namespace="default")
    finished = await _wait_job_finished(client, "broken", "default")
    assert finished.status is not None and finished.status.failed == 1
    conditions = {c.type: c for c in finished.status.conditions or []}
    assert conditions["Failed"].reason == "BackoffLimitExceeded"
    assert "FailureTarget" in conditions
    [pod] = [p async for p in client.list(Pod, namespace="default", labels={"job-name": "broken"})]
    assert pod.status is not None and pod.status.phase == "Failed"
    states = {s.name: s.state for s in pod.status.initContainerStatuses or []}
    assert states["breaks"].terminated is not None and states["breaks"].terminated.exitCode == 3  # type: ignore[union-attr]
    assert states["breaks"].terminated.reason == "Error"  # type: ignore[union-attr]
    assert states["never"].waiting is not None  # type: ignore[union-attr]
    main = (pod.status.containerStatuses or [])[0]
    assert main.state is not None and main.state.waiting is not None and main.state.waiting.reason == "PodInitializing"
