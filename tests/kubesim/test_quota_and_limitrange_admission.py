"""ResourceQuota and LimitRange admission behave like the real plugins (403 with the real wording)."""

from __future__ import annotations

import pytest
from lightkube import ApiError, AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, LimitRange, Namespace, Pod, ResourceQuota

from tests.kubesim import KubeSim
from tests.kubesim._testkit import container, pod

PARKED = {"nodeSelector": {"parked": "true"}}  # keeps pods Pending: no node has this label


async def test_limit_range_defaults_are_applied_and_maxima_enforced(client: AsyncClient) -> None:
    await client.create(Namespace(metadata=ObjectMeta(name="limited")))
    await client.create(LimitRange.from_dict({"metadata": {"name": "defaults"}, "spec": {"limits": [{
        "type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
        "defaultRequest": {"cpu": "100m", "memory": "64Mi"}, "max": {"cpu": "1"}}]}}), namespace="limited")
    created = await client.create(pod("p", [container("main", "true")], **PARKED), namespace="limited")
    res = created.spec.containers[0].resources  # type: ignore[union-attr]
    assert res is not None and res.limits == {"cpu": "500m", "memory": "256Mi"}
    assert res.requests == {"cpu": "100m", "memory": "64Mi"}
    assert "LimitRanger plugin set" in (created.metadata.annotations or {})["kubernetes.io/limit-ranger"]  # type: ignore[union-attr]
    greedy = container("main", "true", resources={"limits": {"cpu": "2"}})
    with pytest.raises(ApiError) as err:
        await client.create(pod("greedy", [greedy], **PARKED), namespace="limited")
    assert err.value.status.code == 403
    assert "maximum cpu usage per Container is 1, but limit is 2" in (err.value.status.message or "")


async def test_quota_counts_objects_and_requires_limits(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(Namespace(metadata=ObjectMeta(name="quota")))
    await client.create(ResourceQuota.from_dict({"metadata": {"name": "q"}, "spec": {"hard": {
        "pods": "1", "limits.cpu": "1", "configmaps": "3"}}}), namespace="quota")
    with pytest.raises(ApiError) as err:
        await client.create(pod("nolimits", [container("main", "true")], **PARKED), namespace="quota")
    assert err.value.status.code == 403
    assert err.value.status.message == ('pods "nolimits" is forbidden: failed quota: q: must specify limits.cpu '
                                        'for: main')
    sized = container("main", "true", resources={"limits": {"cpu": "500m"}})
    await client.create(pod("first", [sized], **PARKED), namespace="quota")
    with pytest.raises(ApiError) as err:
        await client.create(pod("second", [sized], **PARKED), namespace="quota")
    assert err.value.status.message == ('pods "second" is forbidden: exceeded quota: q, requested: pods=1, used: '
                                        'pods=1, limited: pods=1')
    # kube-root-ca.crt already counts: two more ConfigMaps fit, the third does not
    await client.create(ConfigMap(metadata=ObjectMeta(name="c1")), namespace="quota")
    await client.create(ConfigMap(metadata=ObjectMeta(name="c2")), namespace="quota")
    with pytest.raises(ApiError) as err:
        await client.create(ConfigMap(metadata=ObjectMeta(name="c3")), namespace="quota")
    assert err.value.status.code == 403
    assert kubesim.wait_until(lambda _: (kubesim.get("resourcequotas", "quota", "q") or {}).get("status", {}).get(
        "used") == {"pods": "1", "limits.cpu": "500m", "configmaps": "3"}, 10)
    await client.delete(Pod, "first", namespace="quota")
    await client.create(pod("second", [sized], **PARKED), namespace="quota")
