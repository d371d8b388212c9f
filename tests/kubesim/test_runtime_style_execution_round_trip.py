"""The round trip a Kubernetes runtime makes per execution, with the API calls it costs.

Job + ConfigMap + Secret (owned by the Job) → watch the pod → follow each container's log in order →
Job Complete → delete the Job with Background propagation → the garbage collector removes the rest.
"""

from __future__ import annotations

from typing import Any

from lightkube import AsyncClient
from lightkube.models.meta_v1 import ObjectMeta, OwnerReference
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, Secret
from lightkube.types import CascadeType

from tests.kubesim import KubeSim
from tests.kubesim._testkit import container, job, raw_client

LABELS = {"shoal.dev/execution": "e-1"}
SHARED = [{"name": "state", "mountPath": "/.shoal"}, {"name": "spec", "mountPath": "/.shoal/spec"}]


def _started(obj: Pod, name: str) -> bool:
    status = obj.status
    statuses = [*(status.initContainerStatuses or []), *(status.containerStatuses or [])] if status else []
    return any(s.name == name and s.state is not None and s.state.waiting is None for s in statuses)


async def test_execution_round_trip_and_its_api_calls(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(Namespace(metadata=ObjectMeta(name="exec")))
    kubesim.reset_calls()

    init = [container("setup", "cp /.shoal/spec/steps /.shoal/steps; echo setup-done", volumeMounts=SHARED),
            container("step-1", "echo step-1 $(cat /.shoal/steps)", volumeMounts=SHARED)]
    main = container("step-2", 'echo "step-2 token=$TOKEN"', volumeMounts=SHARED,
                     env=[{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "e-1", "key": "token"}}}])
    created = await client.create(job("e-1", [main], init=init, labels=LABELS, volumes=[
        {"name": "state", "emptyDir": {}}, {"name": "spec", "configMap": {"name": "e-1"}}]), namespace="exec")
    assert created.metadata is not None
    owner = [OwnerReference(apiVersion="batch/v1", kind="Job", name="e-1", uid=created.metadata.uid or "",
                            controller=True, blockOwnerDeletion=True)]
    await client.create(ConfigMap(metadata=ObjectMeta(name="e-1", labels=LABELS, ownerReferences=owner),
                                  data={"steps": "a b c"}), namespace="exec")
    await client.create(Secret(metadata=ObjectMeta(name="e-1", labels=LABELS, ownerReferences=owner),
                               stringData={"token": "t0k"}), namespace="exec")

    order = ["setup", "step-1", "step-2"]
    logs: dict[str, list[str]] = {}
    async for _, p in client.watch(Pod, namespace="exec", labels=LABELS, resource_version=created.metadata.resourceVersion):
        while order and _started(p, order[0]):
            name = order.pop(0)
            assert p.metadata is not None and p.metadata.name is not None
            logs[name] = [line async for line in client.log(p.metadata.name, namespace="exec", container=name,
                                                            follow=True)]
        if not order:
            break
    assert logs == {"setup": ["setup-done\n"], "step-1": ["step-1 a b c\n"], "step-2": ["step-2 token=t0k\n"]}

    done = await client.wait(Job, "e-1", namespace="exec", for_conditions=["Complete", "Failed"])
    assert {c.type for c in done.status.conditions or []} == {"Complete"}  # type: ignore[union-attr]
    await client.delete(Job, "e-1", namespace="exec", cascade=CascadeType.BACKGROUND)

    def cleaned(_: Any) -> bool:
        return not any(kubesim.list(kind, "exec") for kind in ("jobs", "pods", "secrets")) and \
            [c["metadata"]["name"] for c in kubesim.list("configmaps", "exec")] == ["kube-root-ca.crt"]

    assert kubesim.wait_until(cleaned, 10)
    calls = kubesim.calls
    assert calls[("create", "jobs")] == calls[("create", "configmaps")] == calls[("create", "secrets")] == 1
    assert calls[("get", "pods/log")] == 3 and calls[("delete", "jobs")] == 1
    assert {c.namespace for c in kubesim.call_log} == {"exec"} and kubesim.calls_in("exec") == calls
    assert sum(calls.values()) == 1 + 1 + 1 + 1 + 3 + 1 + 1  # the watch for the pod and the Job's wait


async def test_following_a_container_that_is_not_started_is_a_400(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(job("later", [container("main", "true")], init=[container("slow", "sleep 5")]),
                        namespace="default")
    assert kubesim.wait_until(lambda _: bool(kubesim.processes()), 10)
    [p] = kubesim.list("pods", "default")
    async with raw_client(kubesim) as raw:
        res = await raw.get(f"/api/v1/namespaces/default/pods/{p['metadata']['name']}/log",
                            params={"container": "main", "follow": "true"})
    assert res.status_code == 400 and res.headers["content-type"] == "application/json"
    assert res.json()["message"] == (f'container "main" in pod "{p["metadata"]["name"]}" is waiting to start: '
                                     "PodInitializing")
