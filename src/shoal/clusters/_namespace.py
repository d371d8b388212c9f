"""The ``namespace`` provisioner: an ephemeral namespace in an existing cluster, with a ResourceQuota, a
LimitRange, a default-deny NetworkPolicy (only pods of the namespace may reach its pods), a
ServiceAccount bound to ``edit`` in that namespace only, and short-lived TokenRequest tokens handed over
as a kubeconfig. Every object carries the ownership labels; deleting the namespace removes them all.

Class parameters: ``kubeconfig`` (admin access to the host cluster; in-cluster config when absent),
``context``, ``server`` (the API URL written into handed-over kubeconfigs), ``quota`` (ResourceQuota
``hard``), ``limits`` (LimitRange container ``default``/``defaultRequest``), ``clusterRole`` (default
``edit``), ``serviceAccount`` (default ``shoal-user``), ``networkPolicy`` (default true); for a class with
``installAgent``: ``agentImage`` (default the chart's image), ``agentServer`` (the control plane's URL as
seen from inside the cluster; default the controller's), ``agentEnv`` (extra environment of the agent).

``install_agent`` applies the shoal-agent chart's objects (``_agent_objects``) in the namespace — the
agent runs there and executes its workflows there — labelled with the namespace's ownership labels;
``remove_agent`` deletes them and returns once the agent's pod is gone.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from lightkube import AsyncClient, KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.core.exceptions import ApiError, ConfigError
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import LimitRange, Namespace, ResourceQuota, ServiceAccount
from lightkube.resources.networking_v1 import NetworkPolicy
from lightkube.resources.rbac_authorization_v1 import RoleBinding

from shoal.clusters._agent_objects import (
    AgentChartValues,
    apply_agent_objects,
    remove_agent_objects,
    render_agent_objects,
    values_for,
)
from shoal.clusters._provisioner import (
    AgentInstall,
    Credentials,
    Observation,
    OwnedResource,
    OwnerTags,
    ProvisionerError,
    State,
)

LABEL_CONTROLLER = "shoal.dev/controller"
LABEL_UID = "shoal.dev/cluster-uid"
LABEL_CLUSTER = "shoal.dev/cluster"
LABEL_EXPIRES = "shoal.dev/expires-at"
DEFAULT_QUOTA = {"pods": "50", "requests.cpu": "8", "requests.memory": "16Gi", "limits.memory": "32Gi"}
DEFAULT_LIMITS = {
    "default": {"cpu": "1", "memory": "1Gi"},
    "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
}
_KNOWN = {
    "kubeconfig",
    "context",
    "server",
    "quota",
    "limits",
    "clusterRole",
    "serviceAccount",
    "networkPolicy",
    "agentImage",
    "agentServer",
    "agentEnv",
}


def _transient(exc: Exception) -> ProvisionerError:
    if isinstance(exc, ApiError):
        code = int(exc.status.code or 0)
        return ProvisionerError(
            f"{code} {exc.status.reason}: {exc.status.message}", permanent=code in (400, 403, 422)
        )
    return ProvisionerError(f"{type(exc).__name__}: {exc}")


class NamespaceProvisioner:
    name = "namespace"

    def __init__(self) -> None:
        self._clients: dict[tuple[str, str], tuple[AsyncClient, SingleConfig]] = {}

    def validate(self, params: dict[str, Any]) -> list[str]:
        problems = [
            f"parameters.{k}: unknown parameter of the namespace provisioner"
            for k in sorted(set(params) - _KNOWN)
        ]
        for key in ("quota", "agentEnv"):
            if key in params and not isinstance(params[key], dict):
                problems.append(f"parameters.{key}: expected a mapping")
        if "kubeconfig" in params and not Path(str(params["kubeconfig"])).expanduser().is_file():
            problems.append(f"parameters.kubeconfig: {params['kubeconfig']} is not a file")
        return problems

    def _client(self, params: dict[str, Any]) -> tuple[AsyncClient, SingleConfig]:
        key = (str(params.get("kubeconfig") or ""), str(params.get("context") or ""))
        if key not in self._clients:
            try:
                config = KubeConfig.from_file(Path(key[0]).expanduser()) if key[0] else KubeConfig.from_env()
            except ConfigError as exc:
                raise ProvisionerError(
                    f"no usable host cluster configuration: {exc}", permanent=True
                ) from exc
            single = config.get(context_name=key[1] or None)
            if single is None:
                raise ProvisionerError("the host cluster configuration has no usable context", permanent=True)
            self._clients[key] = (AsyncClient(config=single), single)
        return self._clients[key]

    async def close(self) -> None:
        for client, _ in self._clients.values():
            await client.close()
        self._clients.clear()

    async def _create(self, client: AsyncClient, obj: Any, namespace: str | None = None) -> None:
        try:
            await client.create(obj, namespace=namespace)  # type: ignore[call-overload]
        except ApiError as exc:
            if exc.status.code != 409:  # AlreadyExists: created by an earlier (crashed) pass
                raise _transient(exc) from exc
        except Exception as exc:
            raise _transient(exc) from exc

    async def ensure(self, ext: str, params: dict[str, Any], tags: OwnerTags) -> None:
        client, _ = self._client(params)
        labels = {
            LABEL_CONTROLLER: tags.controller,
            LABEL_UID: tags.cluster_uid,
            LABEL_CLUSTER: tags.cluster_name[:63],
            LABEL_EXPIRES: str(tags.expires_at),
        }
        annotations = {
            "janitor/expires": datetime.fromtimestamp(tags.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "shoal.dev/class": tags.class_name,
            "shoal.dev/environment": tags.environment,
        }
        meta = ObjectMeta(name=ext, labels=labels, annotations=annotations)
        await self._create(client, Namespace(metadata=meta))
        sa = str(params.get("serviceAccount") or "shoal-user")
        own = {LABEL_CONTROLLER: tags.controller, LABEL_UID: tags.cluster_uid}
        limits = params.get("limits") or DEFAULT_LIMITS
        objects: list[Any] = [
            LimitRange.from_dict(
                {
                    "metadata": {"name": "shoal-limits", "labels": own},
                    "spec": {"limits": [{"type": "Container", **limits}]},
                }
            ),
            ResourceQuota.from_dict(
                {
                    "metadata": {"name": "shoal-quota", "labels": own},
                    "spec": {
                        "hard": {str(k): str(v) for k, v in (params.get("quota") or DEFAULT_QUOTA).items()}
                    },
                }
            ),
            ServiceAccount.from_dict({"metadata": {"name": sa, "labels": own}}),
            RoleBinding.from_dict(
                {
                    "metadata": {"name": f"{sa}-{params.get('clusterRole') or 'edit'}", "labels": own},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": str(params.get("clusterRole") or "edit"),
                    },
                    "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ext}],
                }
            ),
        ]
        if params.get("networkPolicy", True):
            objects.append(
                NetworkPolicy.from_dict(
                    {
                        "metadata": {"name": "shoal-default-deny", "labels": own},
                        "spec": {
                            "podSelector": {},
                            "policyTypes": ["Ingress"],
                            "ingress": [{"from": [{"podSelector": {}}]}],
                        },
                    }
                )
            )
        for obj in objects:
            await self._create(client, obj, namespace=ext)

    async def observe(self, ext: str, params: dict[str, Any]) -> Observation:
        client, _ = self._client(params)
        try:
            ns = await client.get(Namespace, ext)
        except ApiError as exc:
            if exc.status.code == 404:
                return Observation(State.ABSENT)
            raise _transient(exc) from exc
        except Exception as exc:
            raise _transient(exc) from exc
        if ns.metadata is not None and ns.metadata.deletionTimestamp is not None:
            return Observation(State.DELETING, "namespace terminating")
        if ns.status is not None and ns.status.phase == "Terminating":
            return Observation(State.DELETING, "namespace terminating")
        sa = str(params.get("serviceAccount") or "shoal-user")
        try:
            await client.get(ServiceAccount, sa, namespace=ext)
            await client.get(RoleBinding, f"{sa}-{params.get('clusterRole') or 'edit'}", namespace=ext)
        except ApiError as exc:
            if exc.status.code == 404:  # a crash in the middle of ensure: ensure again to finish it
                return Observation(State.CREATING, "namespace incomplete", {"retryEnsure": True})
            raise _transient(exc) from exc
        return Observation(State.READY, "namespace active", {"namespace": ext})

    async def credentials(self, ext: str, params: dict[str, Any], ttl_s: float) -> Credentials:
        client, config = self._client(params)
        sa = str(params.get("serviceAccount") or "shoal-user")
        seconds = max(600, int(ttl_s))  # the TokenRequest API refuses less than 10 minutes
        req = ServiceAccount.Token(
            metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[], expirationSeconds=seconds)
        )
        try:
            res = await client.create(req, sa, namespace=ext)
        except Exception as exc:
            raise _transient(exc) from exc
        if res.status is None:
            raise ProvisionerError("TokenRequest returned no token")
        cluster: dict[str, Any] = {"server": str(params.get("server") or config.cluster.server)}
        if config.cluster.certificate_auth_data:
            cluster["certificate-authority-data"] = config.cluster.certificate_auth_data
        elif config.cluster.certificate_auth:
            data = Path(config.cluster.certificate_auth).read_bytes()
            cluster["certificate-authority-data"] = base64.b64encode(data).decode()
        elif config.cluster.insecure:
            cluster["insecure-skip-tls-verify"] = True
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": ext, "cluster": cluster}],
            "users": [{"name": f"{ext}-{sa}", "user": {"token": res.status.token}}],
            "contexts": [{"name": ext, "context": {"cluster": ext, "user": f"{ext}-{sa}", "namespace": ext}}],
            "current-context": ext,
        }
        expires = res.status.expirationTimestamp
        return Credentials(yaml.safe_dump(doc, sort_keys=False), expires)

    async def delete(self, ext: str, params: dict[str, Any]) -> None:
        client, _ = self._client(params)
        try:
            await client.delete(Namespace, ext)
        except ApiError as exc:
            if exc.status.code not in (404, 409):
                raise _transient(exc) from exc
        except Exception as exc:
            raise _transient(exc) from exc

    async def list_owned(self, controller: str, params: dict[str, Any]) -> list[OwnedResource]:
        client, _ = self._client(params)
        owned = []
        try:
            async for ns in client.list(Namespace, labels={LABEL_CONTROLLER: controller}):
                meta = ns.metadata
                if meta is None or meta.name is None:
                    continue
                labels = meta.labels or {}
                tags = OwnerTags(
                    controller=controller,
                    cluster_uid=labels.get(LABEL_UID, ""),
                    cluster_name=labels.get(LABEL_CLUSTER, ""),
                    environment=(meta.annotations or {}).get("shoal.dev/environment", ""),
                    class_name=(meta.annotations or {}).get("shoal.dev/class", ""),
                    expires_at=int(labels.get(LABEL_EXPIRES, "0") or 0),
                )
                owned.append(OwnedResource(meta.name, tags, meta.creationTimestamp, "Namespace"))
        except Exception as exc:
            raise _transient(exc) from exc
        return owned

    def _agent_values(
        self, ext: str, params: dict[str, Any], agent: AgentInstall | None, owner: dict[str, str]
    ) -> AgentChartValues:
        return values_for(ext, params, agent, owner)

    async def install_agent(self, ext: str, params: dict[str, Any], agent: AgentInstall) -> None:
        client, _ = self._client(params)
        try:
            ns = await client.get(Namespace, ext)
        except Exception as exc:
            raise _transient(exc) from exc
        labels = (ns.metadata.labels if ns.metadata else None) or {}
        owner = {k: labels[k] for k in (LABEL_CONTROLLER, LABEL_UID) if k in labels}
        await apply_agent_objects(client, render_agent_objects(self._agent_values(ext, params, agent, owner)))

    async def remove_agent(self, ext: str, params: dict[str, Any], name: str) -> None:
        client, _ = self._client(params)
        await remove_agent_objects(client, self._agent_values(ext, params, None, {}))
