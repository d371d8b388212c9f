"""Pods that cannot start stay Pending with the reasons a real cluster gives."""

from __future__ import annotations

from lightkube import AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event, Node, PersistentVolumeClaim, Pod

from tests.kubesim import KubeSim
from tests.kubesim._testkit import container, pod


def _waiting_reason(kubesim: KubeSim, name: str) -> str | None:
    p = kubesim.get("pods", "default", name) or {}
    statuses = p.get("status", {}).get("containerStatuses") or []
    return statuses[0]["state"].get("waiting", {}).get("reason") if statuses else None


async def test_unpullable_image_goes_from_err_image_pull_to_back_off(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(pod("nopull", [container("main", "true", image="example.com/app:does-not-exist")]),
                        namespace="default")
    reasons: list[str] = []
    async for _, obj in client.watch(Pod, namespace="default", fields={"metadata.name": "nopull"}):
        statuses = obj.status.containerStatuses or []  # type: ignore[union-attr]
        reason = statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else None  # type: ignore[union-attr]
        if reason and (not reasons or reasons[-1] != reason):
            reasons.append(reason)
        if reason == "ImagePullBackOff":
            assert obj.status.phase == "Pending"  # type: ignore[union-attr]
            break
    assert reasons[-2:] == ["ErrImagePull", "ImagePullBackOff"]
    events = [e async for e in client.list(Event, namespace="default", fields={"involvedObject.name": "nopull"})]
    assert {"Scheduled", "Pulling", "Failed", "BackOff"} <= {e.reason for e in events}


async def test_node_selector_that_matches_no_node_leaves_the_pod_unschedulable(client: AsyncClient,
                                                                               kubesim: KubeSim) -> None:
    await client.create(pod("picky", [container("main", "true")], nodeSelector={"gpu": "yes"}), namespace="default")
    assert kubesim.wait_until(lambda _: any(
        c.get("reason") == "Unschedulable"
        for c in (kubesim.get("pods", "default", "picky") or {}).get("status", {}).get("conditions", [])), 10)
    p = await client.get(Pod, "picky", namespace="default")
    assert p.spec is not None and p.spec.nodeName is None
    [cond] = [c for c in p.status.conditions or [] if c.type == "PodScheduled"]  # type: ignore[union-attr]
    assert (cond.status, cond.reason) == ("False", "Unschedulable")
    assert "didn't match Pod's node affinity/selector" in (cond.message or "")
    # labelling the node makes it schedulable, as the scheduler retries on node changes
    await client.patch(Node, "kubesim-node", {"metadata": {"labels": {"gpu": "yes"}}})
    done = await client.wait(Pod, "picky", namespace="default", for_conditions=["PodScheduled"])
    assert done.spec is not None and done.spec.nodeName == "kubesim-node"


async def test_missing_claim_blocks_scheduling_until_it_exists(client: AsyncClient, kubesim: KubeSim) -> None:
    mounts = [{"name": "data", "mountPath": "/data"}]
    await client.create(pod("needs-pvc", [container("main", "echo hi > /data/f; cat /data/f", volumeMounts=mounts)],
                            volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]),
                        namespace="default")
    assert kubesim.wait_until(lambda _: "not found" in str(
        (kubesim.get("pods", "default", "needs-pvc") or {}).get("status", {}).get("conditions")), 10)
    await client.create(PersistentVolumeClaim.from_dict({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
        namespace="default")
    assert kubesim.wait_until(
        lambda _: (kubesim.get("pods", "default", "needs-pvc") or {}).get("status", {}).get("phase") == "Succeeded",
        10)
    claim = await client.get(PersistentVolumeClaim, "data", namespace="default")
    assert claim.status is not None and claim.status.phase == "Bound"
    assert [line async for line in client.log("needs-pvc", namespace="default")] == ["hi\n"]


async def test_missing_config_map_key_is_a_create_container_config_error(client: AsyncClient,
                                                                         kubesim: KubeSim) -> None:
    from lightkube.resources.core_v1 import ConfigMap

    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "x"}}}]
    await client.create(pod("cfg", [container("main", "echo $X", env=env)]), namespace="default")
    assert kubesim.wait_until(lambda _: _waiting_reason(kubesim, "cfg") == "CreateContainerConfigError", 10)
    # creating the ConfigMap lets the kubelet start the container, as it retries on its own
    await client.create(ConfigMap(metadata=ObjectMeta(name="later"), data={"x": "arrived"}), namespace="default")
    assert kubesim.wait_until(
        lambda _: (kubesim.get("pods", "default", "cfg") or {}).get("status", {}).get("phase") == "Succeeded", 10)
    assert [line async for line in client.log("cfg", namespace="default")] == ["arrived\n"]


async def test_requests_beyond_the_node_are_insufficient(client: AsyncClient, kubesim: KubeSim) -> None:
    huge = container("main", "true", resources={"requests": {"cpu": "1000"}})
    await client.create(pod("huge", [huge]), namespace="default")
    assert kubesim.wait_until(lambda _: "Insufficient cpu" in str(
        (kubesim.get("pods", "default", "huge") or {}).get("status", {}).get("conditions")), 10)
    # the scheduler retries on every pod change; repeated failures are one aggregated Event with a count
    for i in range(3):
        await client.patch(Pod, "huge", {"metadata": {"labels": {"try": str(i)}}}, namespace="default")
    assert kubesim.wait_until(lambda _: len(kubesim.list("events", "default")) == 1, 10)
    [event] = [e async for e in client.list(Event, namespace="default", fields={"reason": "FailedScheduling"})]
    assert event.count is not None and event.count >= 4
    assert "0/1 nodes are available: 1 Insufficient cpu." in (event.message or "")
