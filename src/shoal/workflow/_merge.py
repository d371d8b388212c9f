"""Merge rules of the workflow language on plain spec dicts (template -> workflow, parent -> child).

Every function takes the base (``dst``) and the overriding part (``include``) and returns a new value;
neither input is modified. ``None`` means "not set".
"""

from __future__ import annotations

import copy
from typing import Any

Data = dict[str, Any]


def merge_map(dst: Data | None, include: Data | None) -> Data | None:
    """Key-wise: include's keys replace dst's."""
    if include is None:
        return dst
    if dst is None:
        return include
    return {**dst, **include}


def _append(dst: list[Any] | None, include: list[Any] | None) -> list[Any] | None:
    if dst is None:
        return include
    if include is None:
        return dst
    return [*dst, *include]


def _override(out: Data, include: Data, keys: tuple[str, ...]) -> None:
    for key in keys:
        if include.get(key) not in (None, ""):
            out[key] = include[key]


def dedupe_env(env: list[Data]) -> list[Data]:
    """Keep the last definition of each name, in the order of those last definitions."""
    seen: set[str] = set()
    out: list[Data] = []
    for item in reversed(env):
        name = item.get("name", "")
        if name not in seen:
            seen.add(name)
            out.append(item)
    out.reverse()
    return out


def merge_security_context(dst: Data | None, include: Data | None) -> Data | None:
    if dst is None:
        return include
    if include is None:
        return dst
    out = dict(dst)
    caps_dst = dst.get("capabilities")
    caps_inc = include.get("capabilities")
    if caps_dst is not None and caps_inc is not None:
        caps: Data = {}
        for key in ("add", "drop"):
            items = [*(caps_dst.get(key) or []), *(caps_inc.get(key) or [])]
            if items:
                caps[key] = list(dict.fromkeys(items))
        out["capabilities"] = caps
    elif caps_inc is not None:
        out["capabilities"] = caps_inc
    for key in ("seLinuxOptions", "windowsOptions"):
        if key in include:
            out[key] = merge_map(dst.get(key), include.get(key))
    for key in ("sysctls", "supplementalGroups"):
        if key in include:
            out[key] = _append(dst.get(key), include.get(key))
    for key, value in include.items():
        special = key in ("capabilities", "seLinuxOptions", "windowsOptions", "sysctls", "supplementalGroups")
        if not special and value is not None:
            out[key] = value
    return out


def merge_resources(dst: Data | None, include: Data | None) -> Data | None:
    if dst is None:
        return include
    if include is None:
        return dst
    out = dict(dst)
    for key in ("requests", "limits"):
        merged = merge_map(dst.get(key), include.get(key))
        if merged is not None:
            out[key] = merged
    return out


def merge_container(dst: Data | None, include: Data | None) -> Data | None:
    """`MergeContainerConfig`: image resets command/args; env deduped by name; lists appended."""
    if dst is None:
        return include
    if include is None:
        return dst
    out = dict(dst)
    _override(out, include, ("workingDir", "imagePullPolicy"))
    env = [*(dst.get("env") or []), *(include.get("env") or [])]
    if env:
        out["env"] = dedupe_env(env)
    for key in ("envFrom", "volumeMounts"):
        merged = _append(dst.get(key), include.get(key))
        if merged is not None:
            out[key] = merged
    if include.get("image"):
        out["image"] = include["image"]
        out.pop("command", None)
        out.pop("args", None)
        if include.get("command") is not None:
            out["command"] = include["command"]
        if include.get("args") is not None:
            out["args"] = include["args"]
    elif include.get("command") is not None:
        out["command"] = include["command"]
        out.pop("args", None)
        if include.get("args") is not None:
            out["args"] = include["args"]
    elif include.get("args") is not None:
        out["args"] = include["args"]
    resources = merge_resources(dst.get("resources"), include.get("resources"))
    if resources is not None:
        out["resources"] = resources
    security = merge_security_context(dst.get("securityContext"), include.get("securityContext"))
    if security is not None:
        out["securityContext"] = security
    return out


def merge_pod(dst: Data | None, include: Data | None) -> Data | None:
    if dst is None:
        return include
    if include is None:
        return dst
    out = dict(dst)
    for key in ("labels", "annotations", "nodeSelector"):
        merged = merge_map(dst.get(key), include.get(key))
        if merged is not None:
            out[key] = merged
    for key in (
        "volumes",
        "imagePullSecrets",
        "tolerations",
        "hostAliases",
        "topologySpreadConstraints",
        "schedulingGates",
    ):
        items = _append(dst.get(key), include.get(key))
        if items is not None:
            out[key] = items
    claims = _append(include.get("resourceClaims"), dst.get("resourceClaims"))
    if claims is not None:
        out["resourceClaims"] = claims
    security = merge_security_context(dst.get("securityContext"), include.get("securityContext"))
    if security is not None:
        out["securityContext"] = security
    if "dnsConfig" in include:
        dns_dst, dns_inc = dst.get("dnsConfig"), include.get("dnsConfig")
        if dns_dst is None or dns_inc is None:
            out["dnsConfig"] = dns_inc if dns_dst is None else dns_dst
        else:
            out["dnsConfig"] = {
                k: v
                for k in ("nameservers", "searches", "options")
                if (v := _append(dns_dst.get(k), dns_inc.get(k))) is not None
            }
    if "affinity" in include:
        out["affinity"] = _merge_affinity(dst.get("affinity"), include.get("affinity"))
    handled = {
        "labels",
        "annotations",
        "nodeSelector",
        "volumes",
        "imagePullSecrets",
        "tolerations",
        "hostAliases",
        "topologySpreadConstraints",
        "schedulingGates",
        "resourceClaims",
        "securityContext",
        "dnsConfig",
        "affinity",
    }
    for key, value in include.items():
        if key not in handled and value not in (None, ""):
            out[key] = value
    return out


def _merge_affinity(dst: Data | None, include: Data | None) -> Data | None:
    if dst is None:
        return include
    if include is None:
        return dst
    out = dict(dst)
    for kind in ("nodeAffinity", "podAffinity", "podAntiAffinity"):
        a, b = dst.get(kind), include.get(kind)
        if a is None or b is None:
            if b is not None:
                out[kind] = b
            continue
        merged: Data = {}
        for key in set(a) | set(b):
            x, y = a.get(key), b.get(key)
            if isinstance(x, list) or isinstance(y, list):
                merged[key] = [*(x or []), *(y or [])]
            elif isinstance(x, dict) and isinstance(y, dict):  # nodeSelector: terms appended
                merged[key] = {
                    "nodeSelectorTerms": [
                        *(x.get("nodeSelectorTerms") or []),
                        *(y.get("nodeSelectorTerms") or []),
                    ]
                }
            else:
                merged[key] = y if y is not None else x
        out[kind] = merged
    return out


def merge_job(dst: Data | None, include: Data | None) -> Data | None:
    if dst is None:
        return include
    if include is None:
        return dst
    out = dict(dst)
    for key in ("labels", "annotations"):
        merged = merge_map(dst.get(key), include.get(key))
        if merged is not None:
            out[key] = merged
    for key, value in include.items():
        if key not in ("labels", "annotations") and value not in (None, ""):
            out[key] = value
    return out


def merge_content(dst: Data | None, include: Data | None) -> Data | None:
    """Files and tarballs appended; git replaced."""
    if dst is None:
        return include
    if include is None:
        return dst
    out = dict(dst)
    for key in ("files", "tarball"):
        merged = _append(dst.get(key), include.get(key))
        if merged is not None:
            out[key] = merged
    if include.get("git") is not None:
        out["git"] = include["git"]
    return out


def merge_execution(dst: Data | None, include: Data | None) -> Data | None:
    if dst is None:
        return include
    if include is None:
        return dst
    out = dict(dst)
    tags = merge_map(dst.get("tags"), include.get("tags"))
    if tags is not None:
        out["tags"] = tags
    for key, value in include.items():
        if key != "tags" and value is not None:
            out[key] = value
    return out


def merge_fields(dst: Data | None, include: Data | None) -> Data | None:
    """Field-wise override (system, timeouts, concurrency)."""
    if dst is None:
        return include
    if include is None:
        return dst
    out = dict(dst)
    for key, value in include.items():
        if value not in (None, ""):
            out[key] = value
    return out


def deep_copy(value: Any) -> Any:
    """A copy of plain YAML data (dicts, lists, scalars), faster than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return copy.deepcopy(value)
