"""The shoal-agent Helm chart's objects, rendered in Python (the controller installs agents without
``helm``), and applying / removing them through a Kubernetes client.

``render_agent_objects`` produces what ``helm template <release> deploy/helm/shoal-agent`` produces for
the same values (ServiceAccount, Secret with the agent token, per execution namespace a Role limited to
what the Kubernetes runtime does, its RoleBinding and the executions' ServiceAccount, and the Deployment
running ``shoal agent`` with ``SHOAL_RUNTIME=kubernetes``); ``tests/clusters`` renders the real chart and
compares, so the two cannot drift. Differences on purpose: ``app.kubernetes.io/managed-by`` says
``shoal-controller`` (not Helm), and every object also carries the cluster's ownership labels.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod, Secret, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding
from lightkube.types import CascadeType

from shoal.clusters._provisioner import AgentInstall, ProvisionerError

CHART_NAME = "shoal-agent"
CHART_VERSION = "0.1.0"  # deploy/helm/shoal-agent/Chart.yaml `version` (checked by the tests)
APP_VERSION = "0.1.0"  # ... and `appVersion`: the default image tag
IMAGE_REPOSITORY = "ghcr.io/shoal-dev/shoal"
DEFAULT_IMAGE = f"{IMAGE_REPOSITORY}:{APP_VERSION}"
MANAGED_BY = "shoal-controller"
FIELD_MANAGER = "shoal-clusters"
TOKEN_ANNOTATION = "shoal.dev/token-sha256"  # a new token rolls the Deployment (the pod reads it at start)

# What the agent does in an execution namespace (the chart's templates/rbac.yaml): nothing else.
AGENT_RULES: tuple[dict[str, list[str]], ...] = (
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get", "list", "delete"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "get", "delete"]},
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["create", "get", "delete"]},
)
# The chart's values.yaml defaults the controller keeps.
RESOURCES = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
POD_SECURITY_CONTEXT = {"runAsNonRoot": True, "runAsUser": 1001, "fsGroup": 1001}
SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


@dataclass(frozen=True, slots=True)
class AgentChartValues:
    """The chart values the controller sets (names as in values.yaml, in Python spelling)."""

    namespace: str  # the release namespace: where the agent runs
    server_url: str
    token: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    release: str = CHART_NAME
    image: str = DEFAULT_IMAGE
    pull_policy: str = "IfNotPresent"
    execution_namespaces: tuple[str, ...] = ()  # empty: the release namespace
    max_concurrent: int = 4
    extra_env: Mapping[str, str] = field(default_factory=dict)
    owner_labels: Mapping[str, str] = field(default_factory=dict)  # added to every object

    def __repr__(self) -> str:  # the token stays out of logs
        return f"AgentChartValues(name={self.name!r}, namespace={self.namespace!r}, labels={dict(self.labels)!r})"

    @property
    def fullname(self) -> str:
        base = self.release if CHART_NAME in self.release else f"{self.release}-{CHART_NAME}"
        return base[:63].rstrip("-")

    @property
    def namespaces(self) -> list[str]:
        return list(self.execution_namespaces) or [self.namespace]

    def helm_values(self) -> dict[str, Any]:
        """The same values for ``helm template`` (what the chart test passes)."""
        repo, _, tag = self.image.rpartition(":")
        return {
            "image": {"repository": repo, "tag": tag, "pullPolicy": self.pull_policy},
            "server": {"url": self.server_url},
            "agent": {
                "name": self.name,
                "labels": dict(self.labels),
                "token": self.token,
                "maxConcurrent": self.max_concurrent,
            },
            "executionNamespaces": list(self.execution_namespaces),
            "extraEnv": [{"name": k, "value": v} for k, v in self.extra_env.items()],
            "podAnnotations": {TOKEN_ANNOTATION: token_digest(self.token)},
        }


def values_for(
    namespace: str, params: Mapping[str, Any], agent: AgentInstall | None,
    owner_labels: Mapping[str, str] | None = None,
) -> AgentChartValues:
    """The chart values of a provisioner's agent: its release ``namespace``, what the controller minted
    (``agent``; None when only names matter, for removal) and the class parameters ``agentServer``,
    ``agentImage``, ``agentEnv``."""
    return AgentChartValues(
        namespace=namespace,
        server_url=str(params.get("agentServer") or (agent.server if agent else "")),
        token=agent.token if agent else "",
        name=agent.name if agent else "",
        labels=dict(agent.labels) if agent else {},
        image=str(params.get("agentImage") or DEFAULT_IMAGE),
        extra_env={str(k): str(v) for k, v in (params.get("agentEnv") or {}).items()},
        owner_labels=dict(owner_labels or {}),
    )


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def _labels(v: AgentChartValues) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": CHART_NAME,
        "app.kubernetes.io/instance": v.release,
        "app.kubernetes.io/version": APP_VERSION,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "helm.sh/chart": f"{CHART_NAME}-{CHART_VERSION}",
        **v.owner_labels,
    }


def selector_labels(v: AgentChartValues) -> dict[str, str]:
    return {"app.kubernetes.io/name": CHART_NAME, "app.kubernetes.io/instance": v.release}


def _meta(v: AgentChartValues, name: str, namespace: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": _labels(v)}


def render_agent_objects(v: AgentChartValues) -> list[dict[str, Any]]:
    """The chart's objects for these values, in the order ``helm template`` prints them."""
    if not v.server_url:
        raise ProvisionerError("set the server URL the agent connects to", permanent=True)
    if not v.token:
        raise ProvisionerError("an agent token is needed", permanent=True)
    full = v.fullname
    executions_sa = f"{full}-executions"
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(v, full, v.namespace)},
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(v, full, v.namespace),
            "type": "Opaque",
            "data": {"token": base64.b64encode(v.token.encode()).decode()},
        },
    ]
    for ns in v.namespaces:
        objects += [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": _meta(v, full, ns),
                "rules": copy.deepcopy(list(AGENT_RULES)),
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": _meta(v, full, ns),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": full},
                "subjects": [
                    {"kind": "ServiceAccount", "name": full, "namespace": v.namespace},
                    {"kind": "ServiceAccount", "name": executions_sa, "namespace": ns},
                ],
            },
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(v, executions_sa, ns)},
        ]
    args = ["agent", "--name", v.name, "--max-concurrent", str(v.max_concurrent)]
    for key in sorted(v.labels):
        args += ["--label", f"{key}={v.labels[key]}"]
    env: list[dict[str, Any]] = [
        {"name": "SHOAL_SERVER", "value": v.server_url},
        {"name": "SHOAL_AGENT_TOKEN", "valueFrom": {"secretKeyRef": {"name": full, "key": "token"}}},
        {"name": "SHOAL_HOME", "value": "/var/lib/shoal"},
        {"name": "SHOAL_RUNTIME", "value": "kubernetes"},
        {"name": "SHOAL_KUBE_NAMESPACE", "value": v.namespaces[0]},
        {"name": "SHOAL_KUBE_NAMESPACES", "value": ",".join(v.namespaces)},
        {"name": "SHOAL_KUBE_IMAGE", "value": v.image},
        {"name": "SHOAL_KUBE_IMAGE_PULL_POLICY", "value": v.pull_policy},
        {"name": "SHOAL_KUBE_SERVICE_ACCOUNT", "value": executions_sa},
        *({"name": k, "value": val} for k, val in v.extra_env.items()),
    ]
    selector = selector_labels(v)
    objects.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(v, full, v.namespace),
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": dict(selector)},
                "template": {
                    "metadata": {
                        "labels": dict(selector),
                        "annotations": {TOKEN_ANNOTATION: token_digest(v.token)},
                    },
                    "spec": {
                        "serviceAccountName": full,
                        "securityContext": copy.deepcopy(POD_SECURITY_CONTEXT),
                        "containers": [
                            {
                                "name": "agent",
                                "image": v.image,
                                "imagePullPolicy": v.pull_policy,
                                "args": args,
                                "env": env,
                                "resources": copy.deepcopy(RESOURCES),
                                "securityContext": copy.deepcopy(SECURITY_CONTEXT),
                                "volumeMounts": [
                                    {"name": "state", "mountPath": "/var/lib/shoal"},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                            }
                        ],
                        "volumes": [{"name": "state", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                    },
                },
            },
        }
    )
    return objects


# ---------------------------------------------------------------------------------------- applying

_KINDS: dict[str, Any] = {
    "ServiceAccount": ServiceAccount,
    "Secret": Secret,
    "Role": Role,
    "RoleBinding": RoleBinding,
    "Deployment": Deployment,
}


def as_provisioner_error(exc: Exception) -> ProvisionerError:
    if isinstance(exc, ApiError):
        code = int(exc.status.code or 0)
        return ProvisionerError(
            f"{code} {exc.status.reason}: {exc.status.message}", permanent=code in (400, 403, 422)
        )
    return ProvisionerError(f"{type(exc).__name__}: {exc}")


async def apply_agent_objects(client: AsyncClient, objects: list[dict[str, Any]]) -> None:
    """Create or replace each object (server-side apply, forced): a pass that crashed half-way and runs
    again converges on the same objects, never duplicates."""
    for doc in objects:
        resource = _KINDS.get(doc["kind"])
        if resource is None:
            raise ProvisionerError(f"cannot apply a {doc['kind']}", permanent=True)
        obj = resource.from_dict(doc)  # carries its namespace
        try:
            await client.apply(obj, field_manager=FIELD_MANAGER, force=True)
        except Exception as exc:
            raise as_provisioner_error(exc) from exc


async def remove_agent_objects(
    client: AsyncClient, v: AgentChartValues, *, wait_s: float = 30.0, poll_s: float = 0.1
) -> None:
    """Delete what ``render_agent_objects`` made (absent is fine), then wait until the agent's pods are
    gone: the agent has stopped before anything else of the cluster goes. A pod still terminating after
    ``wait_s`` is a transient error (the controller's next pass checks again)."""
    full = v.fullname
    targets: list[tuple[Any, str, str]] = [(Deployment, full, v.namespace), (Secret, full, v.namespace)]
    for ns in v.namespaces:
        targets += [(RoleBinding, full, ns), (Role, full, ns), (ServiceAccount, f"{full}-executions", ns)]
    targets.append((ServiceAccount, full, v.namespace))
    for kind, name, ns in targets:
        try:
            if kind is Deployment:
                await client.delete(kind, name, namespace=ns, cascade=CascadeType.BACKGROUND)
            else:
                await client.delete(kind, name, namespace=ns)
        except ApiError as exc:
            if exc.status.code != 404:
                raise as_provisioner_error(exc) from exc
        except Exception as exc:
            raise as_provisioner_error(exc) from exc
    deadline = time.monotonic() + wait_s
    while True:
        left = await agent_pods(client, v)
        if not left:
            return
        if time.monotonic() >= deadline:
            raise ProvisionerError(f"the agent's pod {left[0]} is still terminating")
        await asyncio.sleep(poll_s)


async def agent_pods(client: AsyncClient, v: AgentChartValues) -> list[str]:
    """Names of the agent's pods (by the chart's selector labels) in its namespace."""
    names = []
    try:
        selector: dict[str, Any] = dict(selector_labels(v))
        async for pod in client.list(Pod, namespace=v.namespace, labels=selector):
            if pod.metadata is not None and pod.metadata.name:
                names.append(pod.metadata.name)
    except ApiError as exc:
        if exc.status.code != 404:
            raise as_provisioner_error(exc) from exc
    except Exception as exc:
        raise as_provisioner_error(exc) from exc
    return names
