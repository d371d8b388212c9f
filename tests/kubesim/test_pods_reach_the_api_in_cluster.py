"""A pod's mounted token, CA and KUBERNETES_SERVICE_* reach the API over TLS, limited by RBAC."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lightkube import AsyncClient, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.models.rbac_v1 import RoleRef, Subject
from lightkube.resources.core_v1 import ConfigMap, Namespace
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from tests.kubesim import KubeSim
from tests.kubesim._sandbox import bwrap_usable
from tests.kubesim._testkit import pod

IN_CLUSTER = """
from lightkube import ApiError, Client, KubeConfig
from lightkube.resources.core_v1 import ConfigMap, Secret
client = Client(config=KubeConfig.from_service_account())
print(sorted(c.metadata.name for c in client.list(ConfigMap)))
try:
    list(client.list(Secret))
except ApiError as e:
    print(e.status.code)
"""


@pytest.mark.skipif(not bwrap_usable(), reason="the token is mounted at its real path only under bubblewrap")
async def test_in_cluster_client_uses_the_mounted_service_account(client: AsyncClient, kubesim: KubeSim) -> None:
    await client.create(ConfigMap(metadata=ObjectMeta(name="visible")), namespace="default")
    await client.create(RoleBinding(
        metadata=ObjectMeta(name="default-view"),
        roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="view"),
        subjects=[Subject(kind="ServiceAccount", name="default", namespace="default")]), namespace="default")
    main = {"name": "main", "image": "python:3.11", "command": [sys.executable, "-c", IN_CLUSTER]}
    await client.create(pod("in-cluster", [main]), namespace="default")

    def finished(_: object) -> bool:
        phase = (kubesim.get("pods", "default", "in-cluster") or {}).get("status", {}).get("phase")
        return phase in ("Succeeded", "Failed")

    assert kubesim.wait_until(finished, 30)
    lines = [line async for line in client.log("in-cluster", namespace="default")]
    # `view` reads ConfigMaps but not Secrets
    assert lines == ["['kube-root-ca.crt', 'visible']\n", "403\n"], lines


async def test_tls_kubeconfig_verifies_the_cluster_ca(kubesim: KubeSim, tmp_path: Path) -> None:
    config = KubeConfig.from_file(kubesim.kubeconfig(tmp_path / "tls", tls=True))
    assert config.get().cluster.server == kubesim.tls_url
    secure = AsyncClient(config=config)
    assert (await secure.get(Namespace, "default")).metadata is not None
    await secure.close()
