"""The resource types the simulated API server serves, with the facts discovery and routing need.

One row per resource: group/version/kind/plural, scope, subresources and the field selectors a real
API server accepts for it. Anything not listed here is answered with 404, as a real server would.
"""

from __future__ import annotations

from dataclasses import dataclass

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
COMMON_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    has_status: bool = False
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    field_selectors: tuple[str, ...] = COMMON_FIELDS
    # kinds whose spec changes bump metadata.generation
    tracks_generation: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """Unique key: `plural.group` (or just `plural` for the core group), like RBAC and quotas."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_resource(self) -> str:
        """What error messages name: `jobs.batch`, `pods`."""
        return self.key


def _core(kind: str, plural: str, namespaced: bool = True, **kw: object) -> ResourceType:
    return ResourceType("", "v1", kind, plural, namespaced, **kw)  # type: ignore[arg-type]


POD_FIELDS = (
    *COMMON_FIELDS,
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)
EVENT_FIELDS = (
    *COMMON_FIELDS,
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

RESOURCES: tuple[ResourceType, ...] = (
    _core("Namespace", "namespaces", False, short_names=("ns",), has_status=True,
          field_selectors=(*COMMON_FIELDS, "status.phase"),
          verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
          subresources=("status", "finalize")),
    _core("Node", "nodes", False, short_names=("no",), has_status=True, subresources=("status",),
          field_selectors=(*COMMON_FIELDS, "spec.unschedulable")),
    _core("Pod", "pods", short_names=("po",), has_status=True, field_selectors=POD_FIELDS,
          subresources=("status", "log", "binding", "eviction", "ephemeralcontainers")),
    _core("ConfigMap", "configmaps", short_names=("cm",)),
    _core("Secret", "secrets", field_selectors=(*COMMON_FIELDS, "type")),
    _core("ServiceAccount", "serviceaccounts", short_names=("sa",), subresources=("token",)),
    _core("Service", "services", short_names=("svc",), has_status=True, subresources=("status",),
          verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    _core("Endpoints", "endpoints", short_names=("ep",)),
    _core("Event", "events", short_names=("ev",), field_selectors=EVENT_FIELDS),
    _core("ResourceQuota", "resourcequotas", short_names=("quota",), has_status=True, subresources=("status",)),
    _core("LimitRange", "limitranges", short_names=("limits",)),
    _core("PersistentVolumeClaim", "persistentvolumeclaims", short_names=("pvc",), has_status=True,
          subresources=("status",)),
    ResourceType("batch", "v1", "Job", "jobs", True, has_status=True, subresources=("status",),
                 tracks_generation=True, field_selectors=(*COMMON_FIELDS, "status.successful")),
    ResourceType("apps", "v1", "Deployment", "deployments", True, short_names=("deploy",), has_status=True,
                 subresources=("status",), tracks_generation=True),
    ResourceType("apps", "v1", "ReplicaSet", "replicasets", True, short_names=("rs",), has_status=True,
                 subresources=("status",), tracks_generation=True),
    ResourceType("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, short_names=("netpol",),
                 tracks_generation=True),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
)

SUBRESOURCE_KINDS = {
    "log": ("", "v1", "Pod", ("get",)),
    "status": (None, None, None, ("get", "patch", "update")),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ("create",)),
    "binding": ("", "v1", "Binding", ("create",)),
    "eviction": ("policy", "v1", "Eviction", ("create",)),
    "ephemeralcontainers": ("", "v1", "Pod", ("get", "patch", "update")),
    "finalize": ("", "v1", "Namespace", ("update",)),
}

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}
_BY_KEY = {r.key: r for r in RESOURCES}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    return _BY_PATH.get((group, version, plural))


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    return _BY_KIND.get((api_version, kind))


def by_key(key: str) -> ResourceType:
    return _BY_KEY[key]


def groups() -> dict[str, list[str]]:
    """Group name → versions served (the core group is the empty string)."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


def resource_list(group: str, version: str) -> list[dict[str, object]] | None:
    """The `resources` of an APIResourceList, or None when the group/version is not served."""
    rows = [r for r in RESOURCES if r.group == group and r.version == version]
    if not rows:
        return None
    out: list[dict[str, object]] = []
    for r in rows:
        row: dict[str, object] = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            row["shortNames"] = list(r.short_names)
        out.append(row)
        for sub in r.subresources:
            sgroup, sversion, skind, sverbs = SUBRESOURCE_KINDS[sub]
            srow: dict[str, object] = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": skind or r.kind,
                "verbs": list(sverbs),
            }
            if sgroup is not None and (sgroup, sversion) != (group, version):
                srow["group"] = sgroup
                srow["version"] = sversion
            out.append(srow)
    return out
