"""Merge, strategic-merge, JSON patch and server-side apply; status is only written through /status."""

from __future__ import annotations

import pytest
from lightkube import ApiError, AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Pod, Secret
from lightkube.types import PatchType

from tests.kubesim import KubeSim
from tests.kubesim._testkit import container, pod


async def test_merge_and_json_patch(client: AsyncClient) -> None:
    await client.create(ConfigMap(metadata=ObjectMeta(name="m", labels={"a": "1", "b": "2"}), data={"k": "v"}),
                        namespace="default")
    patched = await client.patch(ConfigMap, "m", {"metadata": {"labels": {"a": None, "c": "3"}}, "data": {"n": "w"}},
                                 namespace="default", patch_type=PatchType.MERGE)
    assert patched.metadata is not None and patched.metadata.labels == {"b": "2", "c": "3"}
    assert patched.data == {"k": "v", "n": "w"}
    patched = await client.patch(ConfigMap, "m", [{"op": "replace", "path": "/data/k", "value": "z"},
                                                  {"op": "remove", "path": "/data/n"}],
                                 namespace="default", patch_type=PatchType.JSON)
    assert patched.data == {"k": "z"}
    with pytest.raises(ApiError) as err:
        await client.patch(ConfigMap, "m", [{"op": "test", "path": "/data/k", "value": "other"}],
                           namespace="default", patch_type=PatchType.JSON)
    assert err.value.status.code == 422


async def test_strategic_merge_merges_containers_by_name(client: AsyncClient) -> None:
    await client.create(pod("smp", [container("a", "true"), container("b", "true")],
                            nodeSelector={"no": "node"}), namespace="default")
    patched = await client.patch(Pod, "smp", {"spec": {"containers": [{"name": "b", "image": "alpine:3"}]}},
                                 namespace="default")
    assert patched.spec is not None
    assert [(c.name, c.image) for c in patched.spec.containers] == [("a", "busybox:1.36"), ("b", "alpine:3")]


async def test_server_side_apply_creates_then_updates(client: AsyncClient) -> None:
    cm = ConfigMap(metadata=ObjectMeta(name="applied", namespace="default"), data={"x": "1"})
    first = await client.apply(cm, field_manager="shoal")
    assert first.data == {"x": "1"}
    cm.data = {"x": "2", "y": "3"}
    second = await client.apply(cm, field_manager="shoal")
    assert second.data == {"x": "2", "y": "3"}
    assert second.metadata is not None and first.metadata is not None
    assert second.metadata.uid == first.metadata.uid


async def test_status_is_ignored_on_the_main_resource(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(pod("st", [container("main", "true")], nodeSelector={"no": "node"}), namespace="default")
    await client.patch(Pod, "st", {"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Succeeded"}},
                       namespace="default")
    got = await client.get(Pod, "st", namespace="default")
    assert got.status is not None and got.status.phase == "Pending"
    assert got.metadata is not None and got.metadata.labels == {"x": "y"}
    await client.patch(Pod.Status, "st", {"status": {"message": "set through /status"}}, namespace="default")
    got = await client.get(Pod, "st", namespace="default")
    assert got.status is not None and got.status.message == "set through /status"


async def test_noop_update_keeps_the_resource_version(client: AsyncClient) -> None:
    cm = await client.create(ConfigMap(metadata=ObjectMeta(name="same"), data={"a": "b"}), namespace="default")
    again = await client.replace(cm)
    assert again.metadata is not None and cm.metadata is not None
    assert again.metadata.resourceVersion == cm.metadata.resourceVersion


async def test_secret_string_data_is_stored_as_base64_data(client: AsyncClient) -> None:
    s = await client.create(Secret(metadata=ObjectMeta(name="s"), stringData={"pw": "hunter2"}), namespace="default")
    assert s.data == {"pw": "aHVudGVyMg=="} and s.stringData is None and s.type == "Opaque"
    with pytest.raises(ApiError) as err:
        await client.create(Secret(metadata=ObjectMeta(name="bad"), data={"pw": "not base64!"}), namespace="default")
    assert err.value.status.code == 422


async def test_dry_run_validates_without_storing(client: AsyncClient, kubesim: KubeSim) -> None:
    out = await client.create(ConfigMap(metadata=ObjectMeta(name="dry")), namespace="default", dry_run=True)
    assert out.metadata is not None and out.metadata.uid
    assert kubesim.get("configmaps", "default", "dry") is None


async def test_generate_name_and_list_pagination(client: AsyncClient) -> None:
    for _ in range(5):
        await client.create(ConfigMap(metadata=ObjectMeta(generateName="gen-")), namespace="default")
    names = [c.metadata.name async for c in client.list(ConfigMap, namespace="default", chunk_size=2)]  # type: ignore[union-attr]
    generated = [n for n in names if n and n.startswith("gen-")]
    assert len(generated) == 5 and len(set(generated)) == 5 and all(len(n) == 9 for n in generated)
