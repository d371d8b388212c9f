"""RBAC authorization for service-account tokens, and the built-in cluster roles.

The admin token of the kubeconfig is in `system:masters` and is never checked (as on a real
cluster). Tokens minted by the TokenRequest API authenticate as
`system:serviceaccount:<ns>:<name>` and are authorized from the stored Roles, ClusterRoles,
RoleBindings and ClusterRoleBindings, so a namespace-scoped credential is really namespace-scoped.
The built-in `cluster-admin`, `admin`, `edit` and `view` roles are condensed versions of the real
ones for the resources the simulator serves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _registry as reg

if TYPE_CHECKING:
    from ._apiserver import ApiServer, User

ROLES = reg.by_key("roles.rbac.authorization.k8s.io")
CLUSTER_ROLES = reg.by_key("clusterroles.rbac.authorization.k8s.io")
ROLE_BINDINGS = reg.by_key("rolebindings.rbac.authorization.k8s.io")
CLUSTER_ROLE_BINDINGS = reg.by_key("clusterrolebindings.rbac.authorization.k8s.io")

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_VIEW_CORE = ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
              "pods/log", "pods/status", "services", "services/status", "serviceaccounts", "events",
              "limitranges", "resourcequotas", "resourcequotas/status", "namespaces/status"]
_EDIT_CORE = ["configmaps", "endpoints", "persistentvolumeclaims", "pods", "pods/eviction", "secrets", "services",
              "serviceaccounts"]


def _view_rules() -> list[dict[str, Any]]:
    return [{"apiGroups": [""], "resources": _VIEW_CORE, "verbs": READ},
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": READ},
            {"apiGroups": ["batch"], "resources": ["jobs", "jobs/status"], "verbs": READ},
            {"apiGroups": ["apps"], "resources": ["deployments", "deployments/status", "replicasets",
                                                  "replicasets/status"], "verbs": READ},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": READ}]


def _edit_rules() -> list[dict[str, Any]]:
    return [*_view_rules(),
            {"apiGroups": [""], "resources": ["secrets"], "verbs": READ},
            {"apiGroups": [""], "resources": _EDIT_CORE, "verbs": WRITE},
            {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": WRITE},
            {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"], "verbs": WRITE},
            {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": WRITE}]


def _admin_rules() -> list[dict[str, Any]]:
    return [*_edit_rules(),
            {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
             "verbs": [*READ, *WRITE]}]


def builtin_objects() -> list[tuple[reg.ResourceType, dict[str, Any]]]:
    labels = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    out: list[tuple[reg.ResourceType, dict[str, Any]]] = [
        (CLUSTER_ROLES, {"metadata": {"name": "cluster-admin", "labels": labels},
                         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                                   {"nonResourceURLs": ["*"], "verbs": ["*"]}]}),
        (CLUSTER_ROLES, {"metadata": {"name": "admin", "labels": labels}, "rules": _admin_rules()}),
        (CLUSTER_ROLES, {"metadata": {"name": "edit", "labels": labels}, "rules": _edit_rules()}),
        (CLUSTER_ROLES, {"metadata": {"name": "view", "labels": labels}, "rules": _view_rules()}),
        (CLUSTER_ROLE_BINDINGS, {"metadata": {"name": "cluster-admin", "labels": labels},
                                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                             "name": "cluster-admin"},
                                 "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                               "name": "system:masters"}]}),
    ]
    return out


def _subject_matches(subject: dict[str, Any], user: User, binding_ns: str | None) -> bool:
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        if user.service_account is None:
            return False
        return (subject.get("namespace") or binding_ns, subject.get("name")) == user.service_account
    if kind == "User":
        return subject.get("name") == user.name
    if kind == "Group":
        return subject.get("name") in user.groups
    return False


def _rule_allows(rule: dict[str, Any], verb: str, group: str, resource: str, name: str | None) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and verb not in verbs:
        return False
    groups = rule.get("apiGroups")
    if groups is None:
        return False
    if "*" not in groups and group not in groups:
        return False
    resources = rule.get("resources") or []
    sub = resource.split("/", 1)[1] if "/" in resource else None
    if not ("*" in resources or resource in resources or (sub is not None and f"*/{sub}" in resources)):
        return False
    names = rule.get("resourceNames") or []
    return not names or (name is not None and name in names)


def _role_rules(api: ApiServer, ref: dict[str, Any], namespace: str | None) -> list[dict[str, Any]]:
    if ref.get("kind") == "ClusterRole":
        role = api.store.get(CLUSTER_ROLES, "", ref.get("name", ""))
    else:
        role = api.store.get(ROLES, namespace or "", ref.get("name", ""))
    return list((role or {}).get("rules") or [])


def authorize(api: ApiServer, user: User, verb: str, rt: reg.ResourceType, subresource: str | None,
              namespace: str | None, name: str | None) -> bool:
    resource = rt.plural + (f"/{subresource}" if subresource else "")
    for crb in api.store.list(CLUSTER_ROLE_BINDINGS):
        if any(_subject_matches(s, user, None) for s in crb.get("subjects") or []):
            rules = _role_rules(api, crb.get("roleRef") or {}, None)
            if any(_rule_allows(r, verb, rt.group, resource, name) for r in rules):
                return True
    if namespace:
        for rb in api.store.list(ROLE_BINDINGS, namespace):
            if any(_subject_matches(s, user, namespace) for s in rb.get("subjects") or []):
                rules = _role_rules(api, rb.get("roleRef") or {}, namespace)
                if any(_rule_allows(r, verb, rt.group, resource, name) for r in rules):
                    return True
    return False
