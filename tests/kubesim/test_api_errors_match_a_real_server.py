"""Whatever a real API server rejects, the simulator rejects the same way (code, reason, Status body)."""

from __future__ import annotations

import pytest
from lightkube import ApiError, AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod

from tests.kubesim import KubeSim
from tests.kubesim._testkit import container, pod, raw_client


async def _status_of(coro: object) -> ApiError:
    with pytest.raises(ApiError) as err:
        await coro  # type: ignore[misc]
    return err.value


async def test_not_found_is_a_status_object(client: AsyncClient) -> None:
    err = await _status_of(client.get(ConfigMap, "missing", namespace="default"))
    assert (err.status.code, err.status.reason) == (404, "NotFound")
    assert err.status.message == 'configmaps "missing" not found'
    assert err.status.details is not None and err.status.details.name == "missing"


async def test_create_twice_is_already_exists(client: AsyncClient) -> None:
    await client.create(ConfigMap(metadata=ObjectMeta(name="dup")), namespace="default")
    err = await _status_of(client.create(ConfigMap(metadata=ObjectMeta(name="dup")), namespace="default"))
    assert (err.status.code, err.status.reason) == (409, "AlreadyExists")


async def test_stale_resource_version_is_a_conflict(client: AsyncClient) -> None:
    cm = await client.create(ConfigMap(metadata=ObjectMeta(name="cas"), data={"v": "1"}), namespace="default")
    cm.data = {"v": "2"}
    updated = await client.replace(cm)
    assert updated.metadata is not None and cm.metadata is not None
    assert int(updated.metadata.resourceVersion or 0) > int(cm.metadata.resourceVersion or 0)
    cm.data = {"v": "3"}  # still carries the old resourceVersion
    err = await _status_of(client.replace(cm))
    assert (err.status.code, err.status.reason) == (409, "Conflict")
    assert "the object has been modified" in (err.status.message or "")


async def test_invalid_pod_is_422_with_causes(client: AsyncClient) -> None:
    bad = pod("Bad_Name", [{"name": "main"}, {"name": "main", "image": "busybox"}])
    err = await _status_of(client.create(bad, namespace="default"))
    assert (err.status.code, err.status.reason) == (422, "Invalid")
    causes = {(c.field, c.reason) for c in err.status.details.causes or []}  # type: ignore[union-attr]
    assert ("metadata.name", "FieldValueInvalid") in causes
    assert ("spec.containers[0].image", "FieldValueRequired") in causes
    assert ("spec.containers[1].name", "FieldValueDuplicate") in causes
    assert (err.status.message or "").startswith('Pod "Bad_Name" is invalid: [')


async def test_labels_and_names_are_validated(client: AsyncClient) -> None:
    long_value = "x" * 64
    err = await _status_of(client.create(
        ConfigMap(metadata=ObjectMeta(name="ok", labels={"a": long_value})), namespace="default"))
    assert err.status.code == 422 and "must be no more than 63 characters" in (err.status.message or "")
    err = await _status_of(client.create(Namespace(metadata=ObjectMeta(name="has.dot"))))
    assert err.status.code == 422  # namespaces are DNS-1123 labels, not subdomains


async def test_namespaced_objects_need_their_namespace(client: AsyncClient) -> None:
    err = await _status_of(client.create(ConfigMap(metadata=ObjectMeta(name="x")), namespace="nowhere"))
    assert (err.status.code, err.status.message) == (404, 'namespaces "nowhere" not found')


async def test_job_pod_template_must_not_restart_always(client: AsyncClient) -> None:
    from tests.kubesim._testkit import job

    j = job("always", [container("main", "true")])
    j.spec.template.spec.restartPolicy = "Always"  # type: ignore[union-attr]
    err = await _status_of(client.create(j, namespace="default"))
    assert err.status.code == 422
    assert "spec.template.spec.restartPolicy" in (err.status.message or "")


async def test_pod_spec_is_immutable(client: AsyncClient) -> None:
    await client.create(pod("frozen", [container("main", "true")], nodeSelector={"never": "matches"}),
                        namespace="default")
    err = await _status_of(client.patch(Pod, "frozen", {"spec": {"nodeSelector": {"other": "x"}}},
                                        namespace="default"))
    assert err.status.code == 422 and "pod updates may not change fields" in (err.status.message or "")


async def test_unknown_resources_and_bad_requests(kubesim: KubeSim) -> None:
    async with raw_client(kubesim) as raw:
        res = await raw.get("/api/v1/namespaces/default/widgets")
        assert res.status_code == 404 and res.headers["content-type"] == "application/json"
        assert res.json()["kind"] == "Status"
        res = await raw.get("/apis/example.com/v1/things")
        assert res.status_code == 404
        res = await raw.get("/api/v1/namespaces/default/pods", params={"fieldSelector": "spec.bogus=1"})
        assert res.status_code == 400 and res.json()["reason"] == "BadRequest"
        res = await raw.get("/api/v1/namespaces/default/pods", params={"labelSelector": "a in (b"})
        assert res.status_code == 400
        res = await raw.post("/api/v1/namespaces/default/configmaps", content=b"{not json",
                             headers={"Content-Type": "application/json"})
        assert res.status_code == 400
        res = await raw.post("/api/v1/namespaces/default/configmaps",
                             json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})
        assert res.status_code == 400
        res = await raw.post("/api/v1/namespaces/default/configmaps",
                             json={"metadata": {"name": "x", "namespace": "other"}})
        assert res.status_code == 400
        res = await raw.put("/api/v1/namespaces/default/configmaps", json={})
        assert res.status_code == 405
    async with raw_client(kubesim, token="") as anonymous:
        res = await anonymous.get("/api/v1/namespaces")
        assert (res.status_code, res.json()["reason"]) == (401, "Unauthorized")
        assert (await anonymous.get("/version")).status_code == 200
    async with raw_client(kubesim, token="wrong") as wrong:
        assert (await wrong.get("/api/v1/namespaces")).status_code == 401


async def test_delete_with_wrong_precondition_is_a_conflict(kubesim: KubeSim, client: AsyncClient) -> None:
    await client.create(ConfigMap(metadata=ObjectMeta(name="pre")), namespace="default")
    async with raw_client(kubesim) as raw:
        res = await raw.request("DELETE", "/api/v1/namespaces/default/configmaps/pre",
                                json={"preconditions": {"uid": "not-the-uid"}})
        assert res.status_code == 409
        res = await raw.request("DELETE", "/api/v1/namespaces/default/configmaps/pre")
        assert res.status_code == 200 and res.json()["status"] == "Success"
    err = await _status_of(client.get(ConfigMap, "pre", namespace="default"))
    assert err.status.code == 404
