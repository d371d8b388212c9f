"""Deleting a namespace: Terminating, no new content, everything inside deleted (processes killed), then gone."""

from __future__ import annotations

import pytest
from lightkube import ApiError, AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace, Secret, ServiceAccount

from tests.kubesim import KubeSim
from tests.kubesim._testkit import alive, container, job, running_tree, wait_for_path


async def test_namespace_deletion_removes_everything_inside(client: AsyncClient, kubesim: KubeSim) -> None:
    ns = await client.create(Namespace(metadata=ObjectMeta(name="pr-1234")))
    assert ns.status is not None and ns.status.phase == "Active"
    # a new namespace gets its default service account and root CA, like on a real cluster
    assert (await client.get(ServiceAccount, "default", namespace="pr-1234")).metadata is not None
    assert (await client.get(ConfigMap, "kube-root-ca.crt", namespace="pr-1234")).data
    # a finalizer someone else owns holds the namespace in Terminating until it is released
    await client.create(ConfigMap(metadata=ObjectMeta(name="cfg", finalizers=["example.com/hold"])),
                        namespace="pr-1234")
    await client.create(Secret(metadata=ObjectMeta(name="sec"), stringData={"a": "b"}), namespace="pr-1234")
    marker = kubesim.root / "ns-started"
    await client.create(job("work", [container("main", f"trap 'exit 0' TERM; touch {marker}; sleep 1000 & wait")]),
                        namespace="pr-1234")
    await wait_for_path(marker)
    tree = running_tree(kubesim)
    assert tree

    await client.delete(Namespace, "pr-1234")
    terminating = await client.get(Namespace, "pr-1234")
    assert terminating.status is not None and terminating.status.phase == "Terminating"
    with pytest.raises(ApiError) as err:
        await client.create(ConfigMap(metadata=ObjectMeta(name="late")), namespace="pr-1234")
    assert err.value.status.code == 403
    assert "because it is being terminated" in (err.value.status.message or "")
    assert kubesim.wait_until(lambda _: not kubesim.list("pods", "pr-1234"), timeout=10)
    assert not alive(tree)
    held = await client.get(ConfigMap, "cfg", namespace="pr-1234")
    assert held.metadata is not None and held.metadata.deletionTimestamp is not None
    await client.patch(ConfigMap, "cfg", {"metadata": {"finalizers": None}}, namespace="pr-1234")

    since = terminating.metadata.resourceVersion  # type: ignore[union-attr]
    async for op, _ in client.watch(Namespace, fields={"metadata.name": "pr-1234"}, resource_version=since):
        if op == "DELETED":
            break
    for resource in ("pods", "jobs", "configmaps", "secrets", "serviceaccounts", "events"):
        assert kubesim.list(resource, "pr-1234") == [], resource
    with pytest.raises(ApiError) as err:
        await client.get(Namespace, "pr-1234")
    assert err.value.status.code == 404


async def test_system_namespaces_cannot_be_deleted(client: AsyncClient) -> None:
    for name in ("default", "kube-system", "kube-public"):
        with pytest.raises(ApiError) as err:
            await client.delete(Namespace, name)
        assert err.value.status.code == 403
        assert err.value.status.message == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
