"""TokenRequest mints service-account tokens; RBAC makes them exactly as powerful as their bindings."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from lightkube import ApiError, AsyncClient
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.core_v1 import ConfigMap, Namespace, Pod, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding, RoleBinding

from tests.kubesim import KubeSim
from tests.kubesim._testkit import client_for


async def _token(client: AsyncClient, ns: str, sa: str, seconds: int = 3600) -> tuple[str, str]:
    from lightkube.resources.core_v1 import ServiceAccount as SA

    req = SA.Token(metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[], expirationSeconds=seconds))
    res = await client.create(req, sa, namespace=ns)
    assert res.status is not None
    return res.status.token, str(res.status.expirationTimestamp)


async def test_service_account_token_is_bound_to_its_namespace(client: AsyncClient, kubesim: KubeSim,
                                                               tmp_path: Path) -> None:
    for ns in ("env-a", "env-b"):
        await client.create(Namespace(metadata=ObjectMeta(name=ns)))
    await client.create(ServiceAccount(metadata=ObjectMeta(name="agent")), namespace="env-a")
    await client.create(RoleBinding(
        metadata=ObjectMeta(name="agent-edit"),
        roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="edit"),
        subjects=[Subject(kind="ServiceAccount", name="agent", namespace="env-a")]), namespace="env-a")
    token, expires = await _token(client, "env-a", "agent", 600)
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == "system:serviceaccount:env-a:agent"
    assert expires

    scoped = client_for(kubesim, tmp_path / "scoped", token=token, namespace="env-a")
    await scoped.create(ConfigMap(metadata=ObjectMeta(name="mine")), namespace="env-a")
    assert [p async for p in scoped.list(Pod, namespace="env-a")] == []
    for attempt in (scoped.list(Pod, namespace="env-b"), scoped.list(Namespace)):
        with pytest.raises(ApiError) as err:
            async for _ in attempt:
                pass
        assert err.value.status.code == 403
        assert 'User "system:serviceaccount:env-a:agent" cannot list resource' in (err.value.status.message or "")
    with pytest.raises(ApiError) as err:  # `edit` cannot grant roles
        await scoped.create(RoleBinding(metadata=ObjectMeta(name="escalate"),
                                        roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole",
                                                        name="cluster-admin"), subjects=[]), namespace="env-a")
    assert err.value.status.code == 403

    # deleting the service account revokes its tokens
    await client.delete(ServiceAccount, "agent", namespace="env-a")
    with pytest.raises(ApiError) as err:
        await scoped.get(ConfigMap, "mine", namespace="env-a")
    assert err.value.status.code == 401
    await scoped.close()


async def test_token_request_validation(client: AsyncClient) -> None:
    with pytest.raises(ApiError) as err:
        await _token(client, "default", "default", seconds=60)
    assert err.value.status.code == 422
    assert "may not specify a duration less than 10 minutes" in (err.value.status.message or "")
    with pytest.raises(ApiError) as err:
        await _token(client, "default", "nobody")
    assert err.value.status.code == 404


async def test_tokens_expire(client: AsyncClient, kubesim: KubeSim, tmp_path: Path) -> None:
    await client.create(ClusterRoleBinding(
        metadata=ObjectMeta(name="default-view"),
        roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[Subject(kind="ServiceAccount", name="default", namespace="default")]))
    token, _ = await _token(client, "default", "default", seconds=600)
    scoped = client_for(kubesim, tmp_path / "kc", token=token)
    assert [n.metadata.name async for n in scoped.list(Namespace)]  # type: ignore[union-attr]
    kubesim.advance_token_clock(601)
    with pytest.raises(ApiError) as err:
        await scoped.get(Namespace, "default")
    assert err.value.status.code == 401
    await scoped.close()


async def test_legacy_token_secrets_are_filled_and_die_with_their_secret(client: AsyncClient, kubesim: KubeSim,
                                                                         tmp_path: Path) -> None:
    from lightkube.resources.core_v1 import Secret

    await client.create(ServiceAccount(metadata=ObjectMeta(name="ci")), namespace="default")
    await client.create(RoleBinding(
        metadata=ObjectMeta(name="ci-view"),
        roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[Subject(kind="ServiceAccount", name="ci", namespace="default")]), namespace="default")
    with pytest.raises(ApiError) as err:  # the account annotation is required
        await client.create(Secret(metadata=ObjectMeta(name="bad"), type="kubernetes.io/service-account-token"),
                            namespace="default")
    assert err.value.status.code == 422
    await client.create(Secret(metadata=ObjectMeta(name="ci-token", annotations={
        "kubernetes.io/service-account.name": "ci"}), type="kubernetes.io/service-account-token"),
        namespace="default")
    filled = await client.get(Secret, "ci-token", namespace="default")
    assert filled.data is not None and {"token", "ca.crt", "namespace"} <= set(filled.data)
    token = base64.b64decode(filled.data["token"]).decode()
    scoped = client_for(kubesim, tmp_path / "legacy", token=token)
    assert [p async for p in scoped.list(Pod, namespace="default")] == []
    await client.delete(Secret, "ci-token", namespace="default")
    with pytest.raises(ApiError) as err:
        await scoped.get(ConfigMap, "kube-root-ca.crt", namespace="default")
    assert err.value.status.code == 401
    await scoped.close()
