"""The namespace provisioner against the Kubernetes stand-in: a namespace with quota, limit range,
default-deny policy and an `edit`-bound service account; a short-lived TokenRequest kubeconfig that can
work in that namespace only; teardown deletes it all (revoking the token); the reaper finds nothing.
Then the seed's executionNamespace pattern: one agent's runtime runs a workflow in the ephemeral
namespace through `job.namespace: "{{ config.namespace }}"`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.resources.core_v1 import ConfigMap, LimitRange, Namespace, ResourceQuota, ServiceAccount
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from shoal.clusters import Reaper
from shoal.clusters._namespace import NamespaceProvisioner
from shoal.execution._kubernetes import KubernetesRuntime
from tests.clusters.conftest import Rig, drive
from tests.execution.kubernetes.kube_helpers import job_from_text, needs_bwrap, run_to_end, stand_in_options
from tests.kubesim import KubeSim

EXECUTION_NAMESPACE_WORKFLOW = """
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: in-the-namespace
spec:
  config:
    namespace: {type: string}
  job:
    namespace: "{{ config.namespace }}"
  steps:
  - name: where
    shell: echo "running in the ephemeral namespace"
"""


async def _ready_namespace(rig: Rig, kubeconfig_path: Path, name: str) -> tuple[str, str]:
    rig.extra["namespace"] = NamespaceProvisioner()
    await rig.clusters.apply_class(
        rig.env.id,
        "ns",
        {
            "provisioner": "namespace",
            "parameters": {
                "kubeconfig": str(kubeconfig_path),
                "quota": {"pods": "10", "limits.memory": "8Gi"},
            },
            "credentials": {"tokenTTL": "20m"},
        },
    )
    uid = await rig.request(name, class_name="ns")
    ctl = rig.controller()
    await drive(ctl, lambda: _phase(rig, name, "Ready"), timeout=20)
    row = await rig.clusters.get_cluster(rig.env.id, name)
    assert row.external_name
    return uid, row.external_name


async def test_namespace_lifecycle(
    sqlite_rig: Rig, kubesim: KubeSim, kubeconfig_path: Path, tmp_path: Path
) -> None:
    rig = sqlite_rig
    uid, ns = await _ready_namespace(rig, kubeconfig_path, "pr-42")
    admin = AsyncClient(config=KubeConfig.from_file(kubeconfig_path))
    namespace = await admin.get(Namespace, ns)
    assert (
        namespace.metadata is not None and (namespace.metadata.labels or {})["shoal.dev/cluster-uid"] == uid
    )
    assert (await admin.get(ResourceQuota, "shoal-quota", namespace=ns)).spec.hard["pods"] == "10"  # type: ignore[union-attr,index]
    await admin.get(LimitRange, "shoal-limits", namespace=ns)
    policy = await admin.get(NetworkPolicy, "shoal-default-deny", namespace=ns)
    assert policy.spec.policyTypes == ["Ingress"]  # type: ignore[union-attr]
    await admin.get(ServiceAccount, "shoal-user", namespace=ns)
    binding = await admin.get(RoleBinding, "shoal-user-edit", namespace=ns)
    assert binding.roleRef.name == "edit"

    sealed = await rig.clusters.read_credentials(uid)
    assert sealed is not None
    kubeconfig = rig.sealer.unseal(sealed.sealed)["kubeconfig"]
    assert kubeconfig not in str((await rig.clusters.get_cluster(rig.env.id, "pr-42")).status)
    doc = yaml.safe_load(kubeconfig)
    assert doc["contexts"][0]["context"]["namespace"] == ns
    handed = tmp_path / "kc"
    handed.write_text(kubeconfig)
    scoped = AsyncClient(config=KubeConfig.from_file(handed))
    await scoped.create(ConfigMap.from_dict({"metadata": {"name": "mine"}, "data": {"a": "b"}}), namespace=ns)
    for forbidden in (scoped.list(ConfigMap, namespace="default"), scoped.list(Namespace)):
        with pytest.raises(ApiError) as err:
            async for _ in forbidden:
                pass
        assert err.value.status.code == 403

    await rig.clusters.signal(uid, teardown=True)
    ctl = rig.controller()
    await drive(ctl, lambda: _phase(rig, "pr-42", "Deprovisioned"), timeout=20)
    with pytest.raises(ApiError) as gone:
        await admin.get(Namespace, ns)
    assert gone.value.status.code == 404
    with pytest.raises(ApiError) as revoked:  # the service account went with the namespace: token revoked
        await scoped.get(ConfigMap, "mine", namespace=ns)
    assert revoked.value.status.code in (401, 403, 404)
    assert await Reaper(ctl).owned() == []
    await scoped.close()
    await admin.close()


async def test_reaper_deletes_an_orphan_namespace_after_a_dry_run(
    sqlite_rig: Rig, kubesim: KubeSim, kubeconfig_path: Path
) -> None:
    rig = sqlite_rig
    uid, ns = await _ready_namespace(rig, kubeconfig_path, "orphan")
    row = await rig.clusters.get_cluster(rig.env.id, "orphan")
    await rig.clusters.delete_cluster_row(
        uid, row.resource_version
    )  # the record is lost; the namespace is not
    ctl = rig.controller()
    dry = await Reaper(ctl).sweep(dry_run=True, grace_s=0)
    assert [(r.external_name, r.reason, r.deleted) for r in dry] == [(ns, "NoRecord", False)]
    assert kubesim.get("namespaces", None, ns) is not None  # type: ignore[arg-type]
    done = await Reaper(ctl).sweep(grace_s=0)
    assert [(r.external_name, r.deleted) for r in done] == [(ns, True)]
    assert kubesim.wait_until(lambda store: kubesim.get("namespaces", None, ns) is None, timeout=10)  # type: ignore[arg-type]
    assert await Reaper(ctl).owned() == []


@needs_bwrap
async def test_one_agent_runs_workflows_in_the_ephemeral_namespace(
    sqlite_rig: Rig, kubesim: KubeSim, kubeconfig_path: Path, tmp_path: Path
) -> None:
    rig = sqlite_rig
    _uid, ns = await _ready_namespace(rig, kubeconfig_path, "pr-43")
    runtime = KubernetesRuntime(
        kubeconfig_path, namespaces=[ns], home=tmp_path / "agent", options=stand_in_options(agent="one-agent")
    )
    try:
        job = job_from_text(EXECUTION_NAMESPACE_WORKFLOW, tmp_path, {"namespace": ns})
        events, outcome = await run_to_end(runtime, job)
    finally:
        await runtime.close()
    assert outcome.status == "passed"
    assert any("running in the ephemeral namespace" in (e.line or "") for e in events if e.type == "log")
    assert any(
        call.namespace == ns and call.verb == "create" and call.resource == "jobs"
        for call in kubesim.call_log
    )


async def _phase(rig: Rig, name: str, phase: str) -> bool:
    return await rig.phase(name) == phase
