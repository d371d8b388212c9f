"""Admission plugins and the small controllers that keep namespaces usable.

- ServiceAccount admission: pods get `serviceAccountName: default`, the account must exist (403
  otherwise, the classic "serviceaccount default not found" race is closed by creating it with the
  namespace), and a projected `kube-api-access-*` token volume is mounted in every container.
- DefaultTolerationSeconds, LimitRanger (defaults, min/max → 403) and ResourceQuota (required
  resources and limits → 403 `exceeded quota` / `failed quota`; `status.used` kept current).
- Every new namespace gets the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from functools import partial
from typing import Any

from . import _registry as reg
from ._apiserver import CONFIGMAPS, NAMESPACES, PODS, SERVICEACCOUNTS, ApiServer
from ._clock import random_suffix
from ._errors import ApiError
from ._registry import ResourceType
from ._store import Change, Obj, clone
from ._validation import parse_quantity

QUOTAS = reg.by_key("resourcequotas")
SECRETS = reg.by_key("secrets")
LIMITRANGES = reg.by_key("limitranges")
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"

# quota resource names for object counts of the core group
CORE_COUNTS = {"configmaps": "configmaps", "secrets": "secrets", "services": "services",
               "persistentvolumeclaims": "persistentvolumeclaims", "resourcequotas": "resourcequotas",
               "pods": "pods"}


def install(api: ApiServer) -> None:
    api.admission.extend(partial(plugin, api) for plugin in
                         (_service_account, _default_tolerations, _limit_ranger, _resource_quota))
    api.store.subscribe(partial(_namespace_content, api))
    api.store.subscribe(partial(_quota_status, api))
    api.store.subscribe(partial(_token_secrets, api))


# -- service accounts ---------------------------------------------------------------------------------

def _service_account(api: ApiServer, op: str, rt: ResourceType, obj: Obj, old: Obj | None, dry_run: bool) -> None:
    if rt.kind != "Pod" or op != "CREATE":
        return
    spec = obj.setdefault("spec", {})
    ns, name = obj["metadata"]["namespace"], obj["metadata"].get("name", "")
    sa_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = sa_name
    sa = api.store.get(SERVICEACCOUNTS, ns, sa_name)
    if sa is None:
        raise ApiError.forbidden(PODS, name, f'error looking up service account {ns}/{sa_name}: serviceaccount '
                                             f'"{sa_name}" not found')
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = sa.get("automountServiceAccountToken", True)
    if not automount:
        return
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    if any(any(m.get("mountPath") == SA_MOUNT for m in c.get("volumeMounts") or []) for c in containers):
        return
    vol_name = f"kube-api-access-{random_suffix()}"
    spec.setdefault("volumes", []).append({"name": vol_name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                      "fieldPath": "metadata.namespace"}}]}},
    ]}})
    for c in containers:
        c.setdefault("volumeMounts", []).append({"name": vol_name, "readOnly": True, "mountPath": SA_MOUNT})


def _default_tolerations(api: ApiServer, op: str, rt: ResourceType, obj: Obj, old: Obj | None, dry_run: bool) -> None:
    if rt.kind != "Pod" or op != "CREATE":
        return
    obj["spec"].setdefault("priority", 0)  # the Priority plugin
    obj["spec"].setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = obj["spec"].setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300})


def _namespace_content(api: ApiServer, change: Change) -> None:
    """The ServiceAccount and root-CA publisher controllers."""
    if change.rt is NAMESPACES and change.type == "ADDED":
        ns = change.name
        _ensure_defaults(api, ns)
    elif (change.type == "DELETED" and change.rt in (SERVICEACCOUNTS, CONFIGMAPS)
          and change.name in ("default", "kube-root-ca.crt")):
        nsobj = api.store.get(NAMESPACES, "", change.namespace)
        if nsobj is not None and not nsobj["metadata"].get("deletionTimestamp"):
            _ensure_defaults(api, change.namespace)


def _ensure_defaults(api: ApiServer, ns: str) -> None:
    if api.store.get(SERVICEACCOUNTS, ns, "default") is None:
        api.create(SERVICEACCOUNTS, ns, {"metadata": {"name": "default"}})
    if api.store.get(CONFIGMAPS, ns, "kube-root-ca.crt") is None:
        api.create(CONFIGMAPS, ns, {"metadata": {"name": "kube-root-ca.crt", "annotations": {
            "kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver "
                                         "when using internal endpoints such as the internal service IP or "
                                         "kubernetes.default.svc. No other usage is guaranteed across "
                                         "distributions of Kubernetes clusters."}},
            "data": {"ca.crt": api.ca_pem}})


SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"


def _token_secrets(api: ApiServer, change: Change) -> None:
    """The token controller: fills `kubernetes.io/service-account-token` Secrets of existing accounts."""
    if change.type == "DELETED":
        return
    if change.rt is SERVICEACCOUNTS:
        secrets = api.store.select(SECRETS, change.namespace, lambda s: s.get("type") == SA_TOKEN_TYPE and (
            (s["metadata"].get("annotations") or {}).get(SA_NAME_ANNOTATION) == change.name))
    elif change.rt is SECRETS and change.obj.get("type") == SA_TOKEN_TYPE:
        secrets = [change.obj]
    else:
        return
    for secret in secrets:
        meta = secret["metadata"]
        account = (meta.get("annotations") or {}).get(SA_NAME_ANNOTATION, "")
        sa = api.store.get(SERVICEACCOUNTS, meta["namespace"], account)
        if sa is None or meta.get("deletionTimestamp"):
            continue
        data = secret.get("data") or {}
        if (meta.get("annotations") or {}).get(SA_UID_ANNOTATION) == sa["metadata"]["uid"] and "token" in data:
            continue
        token = api.legacy_token(secret, sa)
        sa_uid = str(sa["metadata"]["uid"])

        def fill(s: Obj, token: str = token, sa_uid: str = sa_uid) -> None:
            s["metadata"].setdefault("annotations", {})[SA_UID_ANNOTATION] = sa_uid
            s["data"] = {**(s.get("data") or {}), "token": _b64(token), "ca.crt": _b64(api.ca_pem),
                         "namespace": _b64(s["metadata"]["namespace"])}

        api.mutate(SECRETS, meta["namespace"], meta["name"], fill, uid=meta["uid"])


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- limit ranges -------------------------------------------------------------------------------------

def _fmt(q: Any) -> str:
    return str(q)


def _limit_ranger(api: ApiServer, op: str, rt: ResourceType, obj: Obj, old: Obj | None, dry_run: bool) -> None:
    if rt.kind != "Pod" or op != "CREATE":
        return
    ns, name = obj["metadata"]["namespace"], obj["metadata"].get("name", "")
    ranges = api.store.list(LIMITRANGES, ns)
    if not ranges:
        return
    problems: list[str] = []
    notes: list[str] = []
    for lr in ranges:
        for lim in (lr.get("spec") or {}).get("limits") or []:
            if lim.get("type") != "Container":
                continue
            for field in ("initContainers", "containers"):
                for c in obj["spec"].get(field) or []:
                    res = c.setdefault("resources", {})
                    set_here: list[str] = []
                    for section, src in (("limits", "default"), ("requests", "defaultRequest")):
                        for k, v in (lim.get(src) or {}).items():
                            if k not in (res.get(section) or {}):
                                res.setdefault(section, {})[k] = v
                                set_here.append(f"{k} {section[:-1]}")
                    for k, v in (lim.get("default") or {}).items():  # requests default to limits
                        if k not in (res.get("requests") or {}) and k not in (lim.get("defaultRequest") or {}):
                            res.setdefault("requests", {})[k] = res.get("limits", {}).get(k, v)
                    if set_here:
                        notes.append(f"{', '.join(sorted(set(set_here)))} for {field[:-1].replace('initC', 'init c')} "
                                     f"{c.get('name')}")
                    for k, v in (lim.get("max") or {}).items():
                        for section in ("limits", "requests"):
                            have = (res.get(section) or {}).get(k)
                            if have is not None and parse_quantity(have) > parse_quantity(v):
                                problems.append(f"maximum {k} usage per Container is {v}, but {section[:-1]} is "
                                                f"{have}")
                        if (res.get("limits") or {}).get(k) is None:
                            problems.append(f"max limit for {k} is {v}, no limit specified")
                    for k, v in (lim.get("min") or {}).items():
                        for section in ("requests", "limits"):
                            have = (res.get(section) or {}).get(k)
                            if have is not None and parse_quantity(have) < parse_quantity(v):
                                problems.append(f"minimum {k} usage per Container is {v}, but {section[:-1]} is "
                                                f"{have}")
    if problems:
        raise ApiError.forbidden(PODS, name, "[" + ", ".join(problems) + "]")
    if notes:
        obj["metadata"].setdefault("annotations", {})["kubernetes.io/limit-ranger"] = (
            "LimitRanger plugin set: " + "; ".join(notes))


# -- resource quotas ----------------------------------------------------------------------------------

def _pod_usage(pod: Obj) -> dict[str, Decimal]:
    spec = pod.get("spec") or {}
    totals: dict[str, Decimal] = {}
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        for section in ("requests", "limits"):
            for k, v in (res.get(section) or {}).items():
                key = f"{section}.{k}"
                totals[key] = totals.get(key, Decimal(0)) + parse_quantity(v)
    for c in spec.get("initContainers") or []:
        res = c.get("resources") or {}
        for section in ("requests", "limits"):
            for k, v in (res.get(section) or {}).items():
                key = f"{section}.{k}"
                totals[key] = max(totals.get(key, Decimal(0)), parse_quantity(v))
    for k in ("cpu", "memory", "ephemeral-storage"):
        if f"requests.{k}" in totals:
            totals[k] = totals[f"requests.{k}"]
    totals["pods"] = totals["count/pods"] = Decimal(1)
    return totals


def _counted_key(rt: ResourceType) -> set[str]:
    keys = {f"count/{rt.key}"}
    if not rt.group and rt.plural in CORE_COUNTS:
        keys.add(CORE_COUNTS[rt.plural])
    return keys


def _pod_counts(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _usage(api: ApiServer, ns: str, hard: dict[str, Any]) -> dict[str, Decimal]:
    used = {k: Decimal(0) for k in hard}
    for pod in api.store.list(PODS, ns):
        if not _pod_counts(pod):
            continue
        for k, v in _pod_usage(pod).items():
            if k in used:
                used[k] += v
    for rt in reg.RESOURCES:
        if not rt.namespaced or rt.kind == "Pod":
            continue
        keys = _counted_key(rt) & set(hard)
        if not keys:
            continue
        n = len(api.store.list(rt, ns))
        for k in keys:
            used[k] = Decimal(n)
    if "requests.storage" in used:
        for pvc in api.store.list(reg.by_key("persistentvolumeclaims"), ns):
            storage = (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
            if storage:
                used["requests.storage"] += parse_quantity(storage)
    return used


def _format_quantity(key: str, value: Decimal) -> str:
    if key.endswith("cpu") or key == "cpu":
        milli = value * 1000
        return f"{int(value)}" if value == int(value) else f"{int(milli)}m"
    if value == int(value):
        n = int(value)
        for suffix, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
            if n and n % size == 0:
                return f"{n // size}{suffix}"
        return str(n)
    return str(value)


def _resource_quota(api: ApiServer, op: str, rt: ResourceType, obj: Obj, old: Obj | None, dry_run: bool) -> None:
    if op != "CREATE" or not rt.namespaced:
        return
    ns, name = obj["metadata"]["namespace"], obj["metadata"].get("name", "")
    quotas = api.store.list(QUOTAS, ns)
    if not quotas:
        return
    if rt.kind == "Pod":
        requested = _pod_usage(obj)
    else:
        requested = {k: Decimal(1) for k in _counted_key(rt)}
        if rt.plural == "persistentvolumeclaims":
            storage = (((obj.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
            if storage:
                requested["requests.storage"] = parse_quantity(storage)
    for q in quotas:
        hard = (q.get("spec") or {}).get("hard") or {}
        if rt.kind == "Pod":
            missing = [k for k in hard if k.split(".", 1)[0] in ("requests", "limits") and
                       k.split(".", 1)[1] in ("cpu", "memory") and k not in requested]
            missing += [k for k in hard if k in ("cpu", "memory") and k not in requested]
            if missing:
                containers = [c.get("name") for c in [*(obj["spec"].get("initContainers") or []),
                                                      *(obj["spec"].get("containers") or [])]]
                detail = "; ".join(f"{k} for: {','.join(str(c) for c in containers)}" for k in sorted(missing))
                raise ApiError.forbidden(PODS, name, f"failed quota: {q['metadata']['name']}: must specify {detail}")
        relevant = [k for k in hard if k in requested]
        if not relevant:
            continue
        used = _usage(api, ns, hard)
        over = [k for k in relevant if used[k] + requested[k] > parse_quantity(hard[k])]
        if over:
            req = ",".join(f"{k}={_format_quantity(k, requested[k])}" for k in sorted(over))
            usd = ",".join(f"{k}={_format_quantity(k, used[k])}" for k in sorted(over))
            lim = ",".join(f"{k}={hard[k]}" for k in sorted(over))
            raise ApiError.forbidden(rt, name, f"exceeded quota: {q['metadata']['name']}, requested: {req}, "
                                               f"used: {usd}, limited: {lim}")


def _quota_status(api: ApiServer, change: Change) -> None:
    """The quota controller: keep `status.hard` and `status.used` current."""
    if not change.rt.namespaced or change.rt.kind == "Event":
        return
    ns = change.namespace
    if change.rt is QUOTAS and change.type == "DELETED":
        return
    for q in api.store.list(QUOTAS, ns):
        if q["metadata"].get("deletionTimestamp"):
            continue
        hard = (q.get("spec") or {}).get("hard") or {}
        used = _usage(api, ns, hard)
        status = {"hard": clone(hard), "used": {k: _format_quantity(k, v) for k, v in used.items()}}
        if q.get("status") != status:
            api.mutate(QUOTAS, ns, q["metadata"]["name"], partial(_set_status, status))


def _set_status(status: dict[str, Any], obj: Obj) -> None:
    obj["status"] = status
