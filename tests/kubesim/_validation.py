"""Defaulting and validation of the kinds the simulator serves, with the real server's field paths.

`apply_defaults` fills what the API server's defaulting fills (pod spec, job spec, secrets, services,
namespaces…); `validate` returns the causes of a 422 Invalid (empty when the object is acceptable);
`validate_update` adds the immutability rules of updates.
"""

from __future__ import annotations

import base64
import binascii
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from ._registry import ResourceType
from ._selectors import label_key_errors, label_value_errors, selector_from_object
from ._store import clone

Cause = tuple[str, str, str]  # (reason, field, message)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")

DNS_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                 "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                     "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                     "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")

# kinds whose names must be DNS-1123 labels rather than subdomains
LABEL_NAMED = {"Namespace", "Service"}
# kinds whose names are only path segments
PATH_NAMED = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


def required(field: str) -> Cause:
    return ("FieldValueRequired", field, "Required value")


def invalid(field: str, value: Any, why: str) -> Cause:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return ("FieldValueInvalid", field, f"Invalid value: {shown}: {why}")


def unsupported(field: str, value: Any, allowed: list[str]) -> Cause:
    quoted = ", ".join(f'"{a}"' for a in allowed)
    return ("FieldValueNotSupported", field, f'Unsupported value: "{value}": supported values: {quoted}')


def duplicate(field: str, value: Any) -> Cause:
    return ("FieldValueDuplicate", field, f'Duplicate value: "{value}"')


def forbidden(field: str, why: str) -> Cause:
    return ("FieldValueForbidden", field, f"Forbidden: {why}")


# -- quantities ---------------------------------------------------------------------------------------

_SUFFIX = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15),
    "E": Decimal(10**18), "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}


def parse_quantity(value: Any) -> Decimal:
    """A resource.Quantity as a Decimal; ValueError when it is not one."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        return Decimal(str(value))
    text = str(value).strip()
    m = QUANTITY.match(text)
    if not m:
        raise ValueError(text)
    number, suffix = m.group(1), m.group(2)
    try:
        base = Decimal(number)
    except InvalidOperation as e:
        raise ValueError(text) from e
    if suffix in _SUFFIX:
        return base * _SUFFIX[suffix]
    if suffix[:1] in ("e", "E"):
        try:
            return base * (Decimal(10) ** int(suffix[1:]))
        except ValueError as e:
            raise ValueError(text) from e
    raise ValueError(text)


QUANTITY_MSG = "must match the regex ^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"


# -- defaults -----------------------------------------------------------------------------------------

def _default_container(c: dict[str, Any]) -> None:
    image = str(c.get("image", ""))
    last = image.rsplit("/", 1)[-1]
    if "imagePullPolicy" not in c and image:
        tagged = ":" in last and not last.endswith(":latest")
        c["imagePullPolicy"] = "IfNotPresent" if tagged or "@" in last else "Always"
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    res = c["resources"]
    # requests default to limits when only limits are given
    if res.get("limits"):
        req = res.setdefault("requests", {})
        for k, v in res["limits"].items():
            req.setdefault(k, v)
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for e in c.get("env") or []:
        ref = (e.get("valueFrom") or {}).get("fieldRef")
        if ref is not None:
            ref.setdefault("apiVersion", "v1")


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if isinstance(c, dict):
            _default_container(c)
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        for src in ("configMap", "secret"):
            if isinstance(v.get(src), dict):
                v[src].setdefault("defaultMode", 420)
        if isinstance(v.get("downwardAPI"), dict):
            v["downwardAPI"].setdefault("defaultMode", 420)
        if isinstance(v.get("projected"), dict):
            v["projected"].setdefault("defaultMode", 420)
        if isinstance(v.get("hostPath"), dict):
            v["hostPath"].setdefault("type", "")


def apply_defaults(rt: ResourceType, obj: dict[str, Any]) -> None:
    kind = rt.kind
    spec = obj.get("spec")
    if kind == "Pod" and isinstance(spec, dict):
        default_pod_spec(spec)
    elif kind == "Job" and isinstance(spec, dict):
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
            spec["parallelism"] = 1
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        tmpl = spec.get("template")
        if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
            default_pod_spec(tmpl["spec"])
    elif kind in ("Deployment", "ReplicaSet") and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        if kind == "Deployment":
            strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
            if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                strategy.setdefault("type", "RollingUpdate")
                strategy.setdefault("rollingUpdate", {}).setdefault("maxUnavailable", "25%")
                strategy["rollingUpdate"].setdefault("maxSurge", "25%")
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
        tmpl = spec.get("template")
        if isinstance(tmpl, dict) and isinstance(tmpl.get("spec"), dict):
            default_pod_spec(tmpl["spec"])
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {}) or {}
            obj["data"] = data
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
    elif kind == "Service" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                p.setdefault("targetPort", p.get("port"))
    elif kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("metadata", {}).setdefault("labels", {})
        obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")
    elif kind == "PersistentVolumeClaim" and isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        ref = obj.get("roleRef")
        if isinstance(ref, dict):
            ref.setdefault("apiGroup", "rbac.authorization.k8s.io")
        for s in obj.get("subjects") or []:
            if isinstance(s, dict) and s.get("kind") in ("User", "Group"):
                s.setdefault("apiGroup", "rbac.authorization.k8s.io")


# -- validation ---------------------------------------------------------------------------------------

def _name_causes(kind: str, name: str, field: str = "metadata.name") -> list[Cause]:
    if kind in PATH_NAMED:
        if name in (".", "..") or "/" in name or "%" in name:
            return [invalid(field, name, "may not contain '/' or '%' and may not be '.' or '..'")]
        return []
    if kind in LABEL_NAMED:
        if len(name) > 63:
            return [invalid(field, name, "must be no more than 63 characters")]
        if not DNS_LABEL.match(name):
            return [invalid(field, name, DNS_LABEL_MSG)]
        return []
    if len(name) > 253:
        return [invalid(field, name, "must be no more than 253 characters")]
    if not DNS_SUBDOMAIN.match(name):
        return [invalid(field, name, DNS_SUBDOMAIN_MSG)]
    return []


def _meta_causes(rt: ResourceType, meta: dict[str, Any], prefix: str = "metadata") -> list[Cause]:
    causes: list[Cause] = []
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        return [invalid(f"{prefix}.labels", labels, "must be a map")]
    for k, v in labels.items():
        for err in label_key_errors(str(k)):
            causes.append(invalid(f"{prefix}.labels", k, err))
        if not isinstance(v, str):
            causes.append(invalid(f"{prefix}.labels", v, "must be a string"))
            continue
        for err in label_value_errors(v):
            causes.append(invalid(f"{prefix}.labels", v, err))
    annotations = meta.get("annotations") or {}
    size = 0
    for k, v in annotations.items():
        for err in label_key_errors(str(k)):
            causes.append(invalid(f"{prefix}.annotations", k, err))
        if not isinstance(v, str):
            causes.append(invalid(f"{prefix}.annotations", v, "must be a string"))
        size += len(str(k)) + len(str(v))
    if size > 256 * 1024:
        causes.append(("FieldValueTooLong", f"{prefix}.annotations", "Too long: must have at most 262144 bytes"))
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        for f in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(f):
                causes.append(required(f"{prefix}.ownerReferences[{i}].{f}"))
    return causes


def _resources_causes(res: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not isinstance(res, dict):
        return causes
    for section in ("limits", "requests"):
        for k, v in (res.get(section) or {}).items():
            try:
                parse_quantity(v)
            except ValueError:
                causes.append(invalid(f"{path}.{section}[{k}]", v, QUANTITY_MSG))
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    for k, v in requests.items():
        if k in limits:
            try:
                if parse_quantity(v) > parse_quantity(limits[k]):
                    causes.append(invalid(f"{path}.requests", v, f"must be less than or equal to {k} limit of "
                                                                 f"{limits[k]}"))
            except ValueError:
                pass
    return causes


def _container_causes(c: Any, path: str, volume_names: set[str]) -> list[Cause]:
    if not isinstance(c, dict):
        return [invalid(path, c, "must be an object")]
    causes: list[Cause] = []
    name = c.get("name")
    if not name:
        causes.append(required(f"{path}.name"))
    elif not DNS_LABEL.match(str(name)) or len(str(name)) > 63:
        causes.append(invalid(f"{path}.name", name, DNS_LABEL_MSG))
    if not c.get("image"):
        causes.append(required(f"{path}.image"))
    for key in ("command", "args"):
        val = c.get(key)
        if val is not None and (not isinstance(val, list) or not all(isinstance(a, str) for a in val)):
            causes.append(invalid(f"{path}.{key}", val, "must be a list of strings"))
    seen_env: set[str] = set()
    for i, e in enumerate(c.get("env") or []):
        ep = f"{path}.env[{i}]"
        ename = e.get("name") if isinstance(e, dict) else None
        if not ename:
            causes.append(required(f"{ep}.name"))
            continue
        if not ENV_NAME.match(str(ename)):
            causes.append(invalid(f"{ep}.name", ename, "a valid environment variable name must consist of "
                                  "alphabetic characters, digits, '_', '-', or '.', and must not start with a digit "
                                  "(e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for "
                                  "validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"))
        seen_env.add(str(ename))
        vf = e.get("valueFrom")
        if vf is not None:
            if e.get("value"):
                causes.append(invalid(f"{ep}.valueFrom", "", "may not be specified when `value` is not empty"))
            sources = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef") if vf.get(k)]
            if len(sources) != 1:
                causes.append(invalid(f"{ep}.valueFrom", "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                      "`configMapKeyRef` or `secretKeyRef`"))
            for k in ("configMapKeyRef", "secretKeyRef"):
                ref = vf.get(k)
                if isinstance(ref, dict):
                    if not ref.get("key"):
                        causes.append(required(f"{ep}.valueFrom.{k}.key"))
                    if not ref.get("name"):
                        causes.append(required(f"{ep}.valueFrom.{k}.name"))
            fr = vf.get("fieldRef")
            if isinstance(fr, dict):
                fp = str(fr.get("fieldPath", ""))
                ok = fp in {"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                            "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
                            "status.podIPs"} or re.match(r"^metadata\.(labels|annotations)\['[^']+'\]$", fp)
                if not fp:
                    causes.append(required(f"{ep}.valueFrom.fieldRef.fieldPath"))
                elif not ok:
                    causes.append(unsupported(f"{ep}.valueFrom.fieldRef.fieldPath", fp, [
                        "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace",
                        "metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP",
                        "status.hostIPs", "status.podIP", "status.podIPs"]))
    for i, ef in enumerate(c.get("envFrom") or []):
        if not isinstance(ef, dict) or len([k for k in ("configMapRef", "secretRef") if ef.get(k)]) != 1:
            causes.append(invalid(f"{path}.envFrom[{i}]", "", "may not have more than one field specified at a time"))
    mount_paths: set[str] = set()
    for i, m in enumerate(c.get("volumeMounts") or []):
        mp = f"{path}.volumeMounts[{i}]"
        if not m.get("name"):
            causes.append(required(f"{mp}.name"))
        elif m["name"] not in volume_names:
            causes.append(("FieldValueNotFound", f"{mp}.name", f'Not found: "{m["name"]}"'))
        if not m.get("mountPath"):
            causes.append(required(f"{mp}.mountPath"))
        elif m["mountPath"] in mount_paths:
            causes.append(invalid(f"{mp}.mountPath", m["mountPath"], "must be unique"))
        else:
            mount_paths.add(m["mountPath"])
        sub = m.get("subPath")
        if sub and (str(sub).startswith("/") or ".." in str(sub).split("/")):
            causes.append(invalid(f"{mp}.subPath", sub, "must be a relative path without '..'"))
    for i, p in enumerate(c.get("ports") or []):
        port = p.get("containerPort")
        if not isinstance(port, int) or not 1 <= port <= 65535:
            causes.append(invalid(f"{path}.ports[{i}].containerPort", port,
                                  "must be between 1 and 65535, inclusive"))
    causes += _resources_causes(c.get("resources"), f"{path}.resources")
    return causes


VOLUME_SOURCES = ("emptyDir", "configMap", "secret", "hostPath", "persistentVolumeClaim", "downwardAPI",
                  "projected", "ephemeral", "csi", "nfs")


def pod_spec_causes(spec: Any, path: str) -> list[Cause]:
    if not isinstance(spec, dict):
        return [required(path)]
    causes: list[Cause] = []
    volume_names: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or []):
        vp = f"{path}.volumes[{i}]"
        vname = v.get("name") if isinstance(v, dict) else None
        if not vname:
            causes.append(required(f"{vp}.name"))
            continue
        if not DNS_LABEL.match(str(vname)) or len(str(vname)) > 63:
            causes.append(invalid(f"{vp}.name", vname, DNS_LABEL_MSG))
        if vname in volume_names:
            causes.append(duplicate(f"{vp}.name", vname))
        volume_names.add(str(vname))
        sources = [s for s in VOLUME_SOURCES if s in v]
        if not sources:
            causes.append(required(f"{vp}"))
            causes[-1] = ("FieldValueRequired", vp, "Required value: must specify a volume type")
        elif len(sources) > 1:
            causes.append(forbidden(f"{vp}.{sources[1]}", "may not specify more than 1 volume type"))
        for s in ("configMap",):
            if isinstance(v.get(s), dict) and not v[s].get("name"):
                causes.append(required(f"{vp}.{s}.name"))
        if isinstance(v.get("secret"), dict) and not v["secret"].get("secretName"):
            causes.append(required(f"{vp}.secret.secretName"))
        if isinstance(v.get("persistentVolumeClaim"), dict) and not v["persistentVolumeClaim"].get("claimName"):
            causes.append(required(f"{vp}.persistentVolumeClaim.claimName"))
        if isinstance(v.get("hostPath"), dict) and not v["hostPath"].get("path"):
            causes.append(required(f"{vp}.hostPath.path"))
    containers = spec.get("containers")
    if not containers:
        causes.append(required(f"{path}.containers"))
    names: set[str] = set()
    for field in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(field) or []):
            causes += _container_causes(c, f"{path}.{field}[{i}]", volume_names)
            cname = c.get("name") if isinstance(c, dict) else None
            if cname:
                if cname in names:
                    causes.append(duplicate(f"{path}.{field}[{i}].name", cname))
                names.add(cname)
    rp = spec.get("restartPolicy")
    if rp not in ("Always", "OnFailure", "Never"):
        causes.append(unsupported(f"{path}.restartPolicy", rp, ["Always", "OnFailure", "Never"]))
    ads = spec.get("activeDeadlineSeconds")
    if ads is not None and (not isinstance(ads, int) or ads <= 0):
        causes.append(invalid(f"{path}.activeDeadlineSeconds", ads, "must be between 1 and 2147483647, inclusive"))
    tgps = spec.get("terminationGracePeriodSeconds")
    if tgps is not None and (not isinstance(tgps, int) or tgps < 0):
        causes.append(invalid(f"{path}.terminationGracePeriodSeconds", tgps, "must be greater than or equal to 0"))
    for k, v in (spec.get("nodeSelector") or {}).items():
        for err in label_key_errors(str(k)):
            causes.append(invalid(f"{path}.nodeSelector", k, err))
        for err in label_value_errors(str(v)):
            causes.append(invalid(f"{path}.nodeSelector", v, err))
    sa = spec.get("serviceAccountName")
    if sa and not DNS_SUBDOMAIN.match(str(sa)):
        causes.append(invalid(f"{path}.serviceAccountName", sa, DNS_SUBDOMAIN_MSG))
    return causes


def _int_field(spec: dict[str, Any], field: str, path: str, minimum: int) -> list[Cause]:
    v = spec.get(field)
    if v is None:
        return []
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        return [invalid(f"{path}.{field}", v, f"must be greater than or equal to {minimum}")]
    return []


def validate(rt: ResourceType, obj: dict[str, Any]) -> list[Cause]:
    meta = obj.get("metadata") or {}
    causes: list[Cause] = []
    name = meta.get("name")
    if not name:
        causes.append(("FieldValueRequired", "metadata.name", "Required value: name or generateName is required"))
    else:
        causes += _name_causes(rt.kind, str(name))
    causes += _meta_causes(rt, meta)
    kind = rt.kind
    spec = obj.get("spec")
    if kind == "Pod":
        causes += pod_spec_causes(spec, "spec")
    elif kind == "Job":
        causes += _job_causes(spec)
    elif kind in ("Deployment", "ReplicaSet"):
        causes += _workload_causes(kind, spec)
    elif kind in ("ConfigMap", "Secret"):
        causes += _data_causes(kind, obj)
        if kind == "Secret" and obj.get("type") == "kubernetes.io/service-account-token" and not (
                meta.get("annotations") or {}).get("kubernetes.io/service-account.name"):
            causes.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif kind == "Service":
        causes += _service_causes(spec)
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        causes += _binding_causes(kind, obj)
    elif kind in ("Role", "ClusterRole"):
        for i, rule in enumerate(obj.get("rules") or []):
            if not rule.get("verbs"):
                causes.append(required(f"rules[{i}].verbs"))
            if not rule.get("nonResourceURLs") and rule.get("resources") and rule.get("apiGroups") is None:
                causes.append(required(f"rules[{i}].apiGroups"))
    elif kind == "ResourceQuota":
        for k, v in ((spec or {}).get("hard") or {}).items():
            try:
                parse_quantity(v)
            except ValueError:
                causes.append(invalid(f"spec.hard[{k}]", v, QUANTITY_MSG))
    elif kind == "LimitRange":
        for i, lim in enumerate((spec or {}).get("limits") or []):
            if lim.get("type") not in ("Container", "Pod", "PersistentVolumeClaim"):
                causes.append(unsupported(f"spec.limits[{i}].type", lim.get("type"),
                                          ["Container", "Pod", "PersistentVolumeClaim"]))
            for section in ("default", "defaultRequest", "max", "min", "maxLimitRequestRatio"):
                for k, v in (lim.get(section) or {}).items():
                    try:
                        parse_quantity(v)
                    except ValueError:
                        causes.append(invalid(f"spec.limits[{i}].{section}[{k}]", v, QUANTITY_MSG))
    elif kind == "PersistentVolumeClaim":
        spec = spec or {}
        if not spec.get("accessModes"):
            causes.append(required("spec.accessModes"))
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        if storage is None:
            causes.append(required("spec.resources[storage]"))
    elif kind == "Event" and not obj.get("involvedObject"):
        causes.append(required("involvedObject"))
    return causes


def _job_causes(spec: Any) -> list[Cause]:
    if not isinstance(spec, dict):
        return [required("spec.template")]
    causes: list[Cause] = []
    tmpl = spec.get("template")
    if not isinstance(tmpl, dict) or not tmpl.get("spec"):
        return [required("spec.template")]
    causes += _meta_causes_plain(tmpl.get("metadata") or {}, "spec.template.metadata")
    causes += pod_spec_causes(tmpl.get("spec"), "spec.template.spec")
    rp = (tmpl.get("spec") or {}).get("restartPolicy")
    if rp not in ("OnFailure", "Never"):
        causes.append(("FieldValueNotSupported", "spec.template.spec.restartPolicy",
                       f'Unsupported value: "{rp}": supported values: "OnFailure", "Never"'))
    for f, minimum in (("parallelism", 0), ("completions", 0), ("backoffLimit", 0), ("ttlSecondsAfterFinished", 0),
                       ("activeDeadlineSeconds", 1)):
        causes += _int_field(spec, f, "spec", minimum)
    sel = spec.get("selector")
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    if sel and not selector_from_object(sel).matches(labels):
        causes.append(invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"))
    if spec.get("completionMode") not in (None, "NonIndexed", "Indexed"):
        causes.append(unsupported("spec.completionMode", spec.get("completionMode"), ["NonIndexed", "Indexed"]))
    return causes


def _workload_causes(kind: str, spec: Any) -> list[Cause]:
    """apps/v1 Deployment and ReplicaSet: a selector that matches the template, pods that restart."""
    if not isinstance(spec, dict):
        return [required("spec.selector"), required("spec.template")]
    causes: list[Cause] = []
    sel = spec.get("selector")
    if not isinstance(sel, dict) or not (sel.get("matchLabels") or sel.get("matchExpressions")):
        causes.append(required("spec.selector"))
    tmpl = spec.get("template")
    if not isinstance(tmpl, dict) or not tmpl.get("spec"):
        return [*causes, required("spec.template")]
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    causes += _meta_causes_plain(tmpl.get("metadata") or {}, "spec.template.metadata")
    if isinstance(sel, dict) and (sel.get("matchLabels") or sel.get("matchExpressions")) \
            and not selector_from_object(sel).matches(labels):
        causes.append(invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"))
    causes += pod_spec_causes(tmpl.get("spec"), "spec.template.spec")
    rp = (tmpl.get("spec") or {}).get("restartPolicy")
    if rp != "Always":
        causes.append(("FieldValueNotSupported", "spec.template.spec.restartPolicy",
                       f'Unsupported value: "{rp}": supported values: "Always"'))
    for f, minimum in (("replicas", 0), ("minReadySeconds", 0), ("revisionHistoryLimit", 0),
                       ("progressDeadlineSeconds", 1)):
        causes += _int_field(spec, f, "spec", minimum)
    strategy = (spec.get("strategy") or {}).get("type") if kind == "Deployment" else None
    if strategy not in (None, "Recreate", "RollingUpdate"):
        causes.append(unsupported("spec.strategy.type", strategy, ["Recreate", "RollingUpdate"]))
    if strategy == "Recreate" and (spec.get("strategy") or {}).get("rollingUpdate"):
        causes.append(forbidden("spec.strategy.rollingUpdate",
                                "may not be specified when strategy `type` is 'Recreate'"))
    return causes


def _meta_causes_plain(meta: dict[str, Any], prefix: str) -> list[Cause]:
    from ._registry import by_key

    return _meta_causes(by_key("pods"), meta, prefix)


def _data_causes(kind: str, obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    sections = ("data", "binaryData") if kind == "ConfigMap" else ("data",)
    seen: set[str] = set()
    total = 0
    for section in sections:
        data = obj.get(section) or {}
        if not isinstance(data, dict):
            causes.append(invalid(section, data, "must be a map"))
            continue
        for k, v in data.items():
            if len(k) > 253 or not CONFIG_KEY.match(k):
                causes.append(invalid(f"{section}[{k}]", k, "a valid config key must consist of alphanumeric "
                                      "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                                      "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"))
            if k in seen:
                causes.append(invalid(f"{section}[{k}]", k, "duplicate of key present in data"))
            seen.add(k)
            if not isinstance(v, str):
                causes.append(invalid(f"{section}[{k}]", v, "must be a string"))
                continue
            if kind == "Secret" or section == "binaryData":
                try:
                    decoded = base64.b64decode(v, validate=True)
                except (binascii.Error, ValueError):
                    causes.append(invalid(f"{section}[{k}]", "<value omitted>", "illegal base64 data"))
                    continue
                total += len(decoded)
            else:
                total += len(v.encode())
    limit = 1024 * 1024
    if total > limit:
        causes.append(("FieldValueTooLong", "data" if kind == "Secret" else "[]",
                       f"Too long: must have at most {limit} bytes"))
    return causes


def _service_causes(spec: Any) -> list[Cause]:
    if not isinstance(spec, dict):
        return [required("spec.ports")]
    causes: list[Cause] = []
    stype = spec.get("type", "ClusterIP")
    if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        causes.append(unsupported("spec.type", stype, ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]))
    ports = spec.get("ports") or []
    if not ports and stype != "ExternalName" and spec.get("clusterIP") != "None":
        causes.append(required("spec.ports"))
    for i, p in enumerate(ports):
        port = p.get("port")
        if not isinstance(port, int) or not 1 <= port <= 65535:
            causes.append(invalid(f"spec.ports[{i}].port", port, "must be between 1 and 65535, inclusive"))
        if len(ports) > 1 and not p.get("name"):
            causes.append(required(f"spec.ports[{i}].name"))
    return causes


def _binding_causes(kind: str, obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    ref = obj.get("roleRef")
    if not isinstance(ref, dict):
        return [required("roleRef")]
    allowed = ["ClusterRole"] if kind == "ClusterRoleBinding" else ["Role", "ClusterRole"]
    if ref.get("kind") not in allowed:
        causes.append(unsupported("roleRef.kind", ref.get("kind"), allowed))
    if not ref.get("name"):
        causes.append(required("roleRef.name"))
    if ref.get("apiGroup") != "rbac.authorization.k8s.io":
        causes.append(unsupported("roleRef.apiGroup", ref.get("apiGroup"), ["rbac.authorization.k8s.io"]))
    for i, s in enumerate(obj.get("subjects") or []):
        sk = s.get("kind")
        if sk not in ("ServiceAccount", "User", "Group"):
            causes.append(unsupported(f"subjects[{i}].kind", sk, ["ServiceAccount", "User", "Group"]))
        if not s.get("name"):
            causes.append(required(f"subjects[{i}].name"))
        if sk == "ServiceAccount" and kind == "ClusterRoleBinding" and not s.get("namespace"):
            causes.append(required(f"subjects[{i}].namespace"))
    return causes


# -- updates ------------------------------------------------------------------------------------------

POD_MUTABLE_MSG = ("pod updates may not change fields other than `spec.containers[*].image`,"
                   "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
                   "to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
                   "was previously negative)")


def _strip_pod_mutable(spec: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = clone(spec)
    for f in ("containers", "initContainers"):
        for c in s.get(f) or []:
            c.pop("image", None)
    s.pop("activeDeadlineSeconds", None)
    s.pop("tolerations", None)
    s.pop("schedulingGates", None)
    return s


def validate_update(rt: ResourceType, new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    causes = validate(rt, new)
    kind = rt.kind
    if kind == "Pod":
        if _strip_pod_mutable(new.get("spec") or {}) != _strip_pod_mutable(old.get("spec") or {}):
            causes.append(forbidden("spec", POD_MUTABLE_MSG))
    elif kind == "Job":
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        for f in ("template", "selector", "completionMode"):
            if ns.get(f) != os_.get(f):
                causes.append(invalid(f"spec.{f}", "", "field is immutable"))
        if ns.get("completions") != os_.get("completions"):
            causes.append(invalid("spec.completions", ns.get("completions"), "field is immutable"))
    elif kind in ("Deployment", "ReplicaSet"):
        if (new.get("spec") or {}).get("selector") != (old.get("spec") or {}).get("selector"):
            causes.append(invalid("spec.selector", (new.get("spec") or {}).get("selector"), "field is immutable"))
    elif kind in ("ConfigMap", "Secret"):
        if old.get("immutable"):
            for f in ("data", "binaryData"):
                if new.get(f) != old.get(f):
                    causes.append(forbidden(f, "field is immutable when `immutable` is set"))
            if not new.get("immutable"):
                causes.append(forbidden("immutable", "field is immutable when `immutable` is set"))
        if kind == "Secret" and new.get("type") != old.get("type"):
            causes.append(invalid("type", new.get("type"), "field is immutable"))
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        if new.get("roleRef") != old.get("roleRef"):
            causes.append(invalid("roleRef", new.get("roleRef"), "cannot change roleRef"))
    elif kind == "Service":
        if (old.get("spec") or {}).get("clusterIP") != (new.get("spec") or {}).get("clusterIP"):
            causes.append(invalid("spec.clusterIP", (new.get("spec") or {}).get("clusterIP"), "field is immutable"))
    elif kind == "PersistentVolumeClaim":
        ns, os_ = dict(new.get("spec") or {}), dict(old.get("spec") or {})
        ns.pop("resources", None)
        os_.pop("resources", None)
        if ns != os_:
            causes.append(forbidden("spec", "spec is immutable after creation except resources.requests and "
                                    "volumeAttributesClassName for bound claims"))
    return causes
