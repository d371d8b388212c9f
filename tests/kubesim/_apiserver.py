"""The API server's semantics: create/get/list/update/patch/delete with the real rules.

This is what sits behind every REST route and what the simulated controllers and kubelet call too,
so everything observable goes through the same store and resourceVersions. It enforces: namespace
existence and termination, generateName, system metadata, status subresources, optimistic
concurrency, validation (422), finalizers, graceful pod deletion, owner-reference garbage collection
(Background/Foreground/Orphan, Jobs orphan by default on batch/v1 as on a real server) and the
namespace lifecycle. HTTP concerns live in `_http.py`.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import _registry as reg
from ._clock import new_uid, now, random_suffix, rfc3339
from ._errors import ApiError
from ._patch import json_patch, merge_patch, strategic_merge_patch
from ._registry import ResourceType
from ._selectors import FieldSelector, LabelSelector
from ._store import Change, Obj, Store, clone
from ._validation import apply_defaults, validate, validate_update

PODS = reg.by_key("pods")
NAMESPACES = reg.by_key("namespaces")
SERVICEACCOUNTS = reg.by_key("serviceaccounts")
CONFIGMAPS = reg.by_key("configmaps")
EVENTS = reg.by_key("events")
NODES = reg.by_key("nodes")

ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_PREFIX = "kubernetes.io/serviceaccount/"
LEGACY_SECRET_CLAIM = LEGACY_PREFIX + "secret.name"
SECRETS = reg.by_key("secrets")

Admission = Callable[[str, ResourceType, Obj, "Obj | None", bool], None]


@dataclass
class User:
    name: str
    groups: tuple[str, ...] = ()
    service_account: tuple[str, str] | None = None  # (namespace, name)

    @property
    def is_admin(self) -> bool:
        return "system:masters" in self.groups


@dataclass
class DeleteOptions:
    grace_period: int | None = None
    propagation: str | None = None
    preconditions: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False


class ApiServer:
    """REST semantics over the store. Runs on the simulator's loop."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.signing_key = new_uid().encode()
        # mutating/validating admission plugins: fn(operation, rt, obj, old, dry_run); may raise ApiError
        self.admission: list[Admission] = []
        self._cluster_ip = 10
        self._event_names: dict[tuple[str, ...], str] = {}
        self.ca_pem = ""  # the cluster CA (PEM), published in kube-root-ca.crt and token volumes
        # added to "now" when token expiry is checked, so tests can age credentials without waiting
        self.token_clock_offset = 0.0

    # -- helpers ----------------------------------------------------------------------------------------

    def _existing(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self.store.get(rt, namespace, name)
        if obj is None:
            raise ApiError.not_found(rt, name)
        return obj

    def _check_body(self, rt: ResourceType, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise ApiError.bad_request(f"the body of the request was not a {rt.kind} object")
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version and api_version != rt.api_version:
            raise ApiError.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})")
        if kind and kind != rt.kind:
            raise ApiError.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        body = clone(body)
        body["apiVersion"], body["kind"] = rt.api_version, rt.kind
        meta = body.get("metadata")
        if meta is None:
            body["metadata"] = meta = {}
        if not isinstance(meta, dict):
            raise ApiError.bad_request("metadata must be an object")
        out: Obj = body
        return out

    def _check_namespace_for_create(self, rt: ResourceType, namespace: str, name: str) -> None:
        ns = self.store.get(NAMESPACES, "", namespace)
        if ns is None:
            raise ApiError.not_found(NAMESPACES, namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden",
                           f'{rt.group_resource} "{name}" is forbidden: unable to create new content in namespace '
                           f"{namespace} because it is being terminated",
                           {"name": name, "kind": rt.plural,
                            "causes": [{"reason": "NamespaceTerminating",
                                        "message": f"namespace {namespace} is being terminated",
                                        "field": "metadata.namespace"}]})

    def _admit(self, op: str, rt: ResourceType, obj: Obj, old: Obj | None, dry_run: bool) -> None:
        for plugin in self.admission:
            plugin(op, rt, obj, old, dry_run)

    @staticmethod
    def _initial_status(rt: ResourceType, obj: Obj) -> None:
        kind = rt.kind
        if kind == "Pod":
            obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
        elif kind == "Job":
            obj["status"] = {}
        elif kind == "Namespace":
            obj["status"] = {"phase": "Active"}
        elif kind == "PersistentVolumeClaim":
            obj["status"] = {"phase": "Pending"}
        elif kind == "Service":
            obj["status"] = {"loadBalancer": {}}
        elif rt.has_status:
            obj["status"] = {}

    # -- create -----------------------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str, body: Any, *, dry_run: bool = False) -> Obj:
        obj = self._check_body(rt, body)
        meta = obj["metadata"]
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError.bad_request("the namespace of the provided object does not match the namespace "
                                           "sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise ApiError(500, "InternalError",
                           "Internal error occurred: resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{random_suffix()}"
        name = str(meta.get("name") or "")
        if rt.namespaced and name:
            self._check_namespace_for_create(rt, namespace, name)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = rfc3339()
        for f in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            meta.pop(f, None)
        if rt.tracks_generation:
            meta["generation"] = 1
        self._initial_status(rt, obj)
        apply_defaults(rt, obj)
        self._prepare_create(rt, obj)
        self._admit("CREATE", rt, obj, None, dry_run)
        causes = validate(rt, obj)
        if causes:
            raise ApiError.invalid(rt, name, causes)
        if self.store.get(rt, namespace, name) is not None:
            raise ApiError.already_exists(rt, name)
        if rt.kind == "Pod":
            obj["status"]["qosClass"] = qos_class(obj["spec"])
        if dry_run:
            return obj
        return self.store.commit(rt, obj, expect_new=True)

    def _prepare_create(self, rt: ResourceType, obj: Obj) -> None:
        kind = rt.kind
        if kind == "Job":
            spec = obj.get("spec") or {}
            tmpl = spec.get("template")
            if isinstance(tmpl, dict) and not spec.get("manualSelector"):
                uid, name = obj["metadata"]["uid"], obj["metadata"].get("name", "")
                labels = tmpl.setdefault("metadata", {}).setdefault("labels", {})
                labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                               "controller-uid": uid, "job-name": name})
                if not spec.get("selector"):
                    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        elif kind == "Service":
            spec = obj.setdefault("spec", {})
            if spec.get("type") != "ExternalName" and not spec.get("clusterIP"):
                self._cluster_ip += 1
                spec["clusterIP"] = f"10.96.{self._cluster_ip // 250}.{self._cluster_ip % 250 + 1}"
                spec["clusterIPs"] = [spec["clusterIP"]]

    # -- read -------------------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        return self._existing(rt, namespace, name)

    def list(self, rt: ResourceType, namespace: str | None, labels: LabelSelector, fields: FieldSelector,
             limit: int | None = None, continue_token: str | None = None) -> Obj:
        with self.store._lock:  # a consistent snapshot: items and resourceVersion together
            items = self.store.list(rt, namespace)
            rv = self.store.resource_version
        items = [o for o in items if labels.matches(o["metadata"].get("labels")) and fields.matches(o)]
        list_meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if continue_token:
            try:
                start = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
            except (ValueError, json.JSONDecodeError) as e:
                raise ApiError.bad_request("continue key is not valid: illegal base64 data") from e
            items = [o for o in items if _sort_key(o) > tuple(start["after"])]
        if limit and limit > 0 and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            token = json.dumps({"after": list(_sort_key(items[-1])), "rv": rv})
            list_meta["continue"] = base64.urlsafe_b64encode(token.encode()).decode()
            list_meta["remainingItemCount"] = remaining
        for o in items:  # list items carry neither kind nor apiVersion on a real server
            o.pop("kind", None)
            o.pop("apiVersion", None)
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": list_meta, "items": items}

    # -- update / patch ---------------------------------------------------------------------------------

    def update(self, rt: ResourceType, namespace: str, name: str, body: Any, *, subresource: str | None = None,
               dry_run: bool = False) -> Obj:
        new = self._check_body(rt, body)
        old = self._existing(rt, namespace, name)
        if new["metadata"].get("name") and new["metadata"]["name"] != name:
            raise ApiError.bad_request(f"the name of the object ({new['metadata']['name']}) does not match the "
                                       f"name on the URL ({name})")
        if rt.namespaced and new["metadata"].get("namespace") and new["metadata"]["namespace"] != namespace:
            raise ApiError.bad_request("the namespace of the provided object does not match the namespace sent "
                                       "on the request")
        rv = new["metadata"].get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise ApiError.conflict(rt, name, "the object has been modified; please apply your changes to the "
                                              "latest version and try again")
        uid = new["metadata"].get("uid")
        if uid and uid != old["metadata"]["uid"]:
            raise ApiError.conflict(rt, name, f"Precondition failed: UID in precondition: {old['metadata']['uid']}, "
                                              f"UID in object meta: {uid}")
        return self._write_update(rt, old, new, subresource=subresource, dry_run=dry_run)

    def _write_update(self, rt: ResourceType, old: Obj, new: Obj, *, subresource: str | None,
                      dry_run: bool) -> Obj:
        name = old["metadata"]["name"]
        if subresource == "status":
            merged = clone(old)
            merged["status"] = new.get("status", {})
            new = merged
        elif subresource == "finalize":
            merged = clone(old)
            merged["spec"] = {**(old.get("spec") or {}), "finalizers": (new.get("spec") or {}).get("finalizers") or []}
            new = merged
        else:
            if rt.has_status:
                new["status"] = clone(old.get("status"))
                if new["status"] is None:
                    new.pop("status")
            if rt.kind == "Namespace":
                new["spec"] = clone(old.get("spec") or {})
        meta, old_meta = new["metadata"], old["metadata"]
        for f in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if f in old_meta:
                meta[f] = old_meta[f]
            else:
                meta.pop(f, None)
        meta["name"] = name
        if rt.namespaced:
            meta["namespace"] = old_meta["namespace"]
        meta.pop("resourceVersion", None)
        if subresource is None and "generation" in meta and (new.get("spec") != old.get("spec")):
            meta["generation"] = int(meta["generation"]) + 1
        apply_defaults(rt, new)
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise ApiError.invalid(rt, name, [("FieldValueForbidden", "metadata.finalizers",
                                                   "Forbidden: no new finalizers can be added if the object is "
                                                   "being deleted, found new finalizers " + json.dumps(sorted(added)))])
        self._admit("UPDATE", rt, new, old, dry_run)
        causes = validate_update(rt, new, old)
        if causes:
            raise ApiError.invalid(rt, name, causes)
        if dry_run:
            new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
            return new
        if _same(new, old):
            return old  # a no-op write does not bump the resourceVersion, as on a real server
        committed = self.store.commit(rt, new)
        return self._maybe_finish_deletion(rt, committed) or committed

    def patch(self, rt: ResourceType, namespace: str, name: str, raw: bytes, content_type: str, *,
              subresource: str | None = None, field_manager: str | None = None, dry_run: bool = False,
              ) -> tuple[Obj, bool]:
        """Apply a patch; returns (object, created) — server-side apply may create."""
        ctype = content_type.split(";")[0].strip()
        if ctype not in ("application/json-patch+json", "application/merge-patch+json",
                         "application/strategic-merge-patch+json", "application/apply-patch+yaml",
                         "application/apply-patch+cbor"):
            raise ApiError.unsupported_media(content_type)
        try:
            patch = yaml.safe_load(raw) if ctype == "application/apply-patch+yaml" else json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError) as e:
            raise ApiError.bad_request(f"error decoding patch: {e}") from e
        if ctype == "application/apply-patch+yaml":
            if not field_manager:
                raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required '
                                               'value: is required for apply patch')
            if not isinstance(patch, dict) or not patch.get("apiVersion") or not patch.get("kind"):
                raise ApiError.bad_request("invalid object type: /, Kind=")
            current = self.store.get(rt, namespace, name)
            if current is None:
                if subresource:
                    raise ApiError.not_found(rt, name)
                body = clone(patch)
                body.setdefault("metadata", {})["name"] = name
                return self.create(rt, namespace, body, dry_run=dry_run), True
            target = strategic_merge_patch(current, patch)
        else:
            current = self._existing(rt, namespace, name)
            if ctype == "application/json-patch+json":
                target = json_patch(current, patch)
            elif ctype == "application/merge-patch+json":
                if not isinstance(patch, dict):
                    raise ApiError.bad_request("json: cannot unmarshal into a merge patch: not an object")
                target = merge_patch(current, patch)
            else:
                if not isinstance(patch, dict):
                    raise ApiError.bad_request("json: cannot unmarshal into a strategic merge patch: not an object")
                target = strategic_merge_patch(current, patch)
        if not isinstance(target, dict):
            raise ApiError.bad_request("the patch did not produce an object")
        rv = (target.get("metadata") or {}).get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise ApiError.conflict(rt, name, "the object has been modified; please apply your changes to the "
                                              "latest version and try again")
        new = self._check_body(rt, target)
        return self._write_update(rt, current, new, subresource=subresource, dry_run=dry_run), False

    # -- delete -----------------------------------------------------------------------------------------

    def delete(self, rt: ResourceType, namespace: str, name: str, opts: DeleteOptions | None = None) -> Obj:
        """Delete; returns the object (still present when deletion is pending) or a Success Status."""
        opts = opts or DeleteOptions()
        obj = self._existing(rt, namespace, name)
        meta = obj["metadata"]
        pre = opts.preconditions
        if pre.get("uid") and pre["uid"] != meta["uid"]:
            raise ApiError.conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in "
                                              f"object meta: {meta['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
            raise ApiError.conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                                              f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                              f"{meta['resourceVersion']}")
        if opts.grace_period is not None and opts.grace_period < 0:
            raise ApiError.invalid(rt, name, [("FieldValueInvalid", "gracePeriodSeconds",
                                               f"Invalid value: {opts.grace_period}: must be >= 0")])
        if opts.propagation not in (None, "Orphan", "Background", "Foreground"):
            raise ApiError.invalid(rt, name, [("FieldValueNotSupported", "propagationPolicy",
                                               f'Unsupported value: "{opts.propagation}": supported values: '
                                               '"Foreground", "Background", "Orphan", "nil"')])
        if opts.dry_run:
            return obj
        if rt.kind == "Namespace":
            if name in ("default", "kube-system", "kube-public"):
                raise ApiError.forbidden(rt, name, "this namespace may not be deleted")
            return self._delete_namespace(obj)
        policy = opts.propagation or self._default_policy(rt, obj)
        if rt.kind == "Pod":
            grace = self._pod_grace(obj, opts.grace_period)
            if grace > 0:
                return self._start_graceful(rt, obj, grace, policy)
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Orphan" and "orphan" not in finalizers and self._has_dependents(obj):
            finalizers.append("orphan")
        if policy == "Foreground" and "foregroundDeletion" not in finalizers and self._has_dependents(obj):
            finalizers.append("foregroundDeletion")
        if finalizers:
            if meta.get("deletionTimestamp") and finalizers == meta.get("finalizers"):
                return obj
            meta["finalizers"] = finalizers
            meta.setdefault("deletionTimestamp", rfc3339())
            meta["deletionGracePeriodSeconds"] = 0
            committed = self.store.commit(rt, obj)
            self._process_gc_finalizers(rt, committed)
            return self.store.get(rt, namespace, name) or committed
        return self._remove(rt, obj, policy)

    def _default_policy(self, rt: ResourceType, obj: Obj) -> str:
        finalizers = obj["metadata"].get("finalizers") or []
        if "orphan" in finalizers:
            return "Orphan"
        if "foregroundDeletion" in finalizers:
            return "Foreground"
        # batch/v1 Jobs keep their pods unless told otherwise (apiserver's DefaultGarbageCollectionPolicy)
        return "Orphan" if rt.kind == "Job" else "Background"

    @staticmethod
    def _pod_grace(pod: Obj, requested: int | None) -> int:
        if not (pod.get("spec") or {}).get("nodeName"):
            return 0
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return requested
        return int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))

    def _start_graceful(self, rt: ResourceType, obj: Obj, grace: int, policy: str) -> Obj:
        meta = obj["metadata"]
        current = meta.get("deletionGracePeriodSeconds")
        if meta.get("deletionTimestamp") and current is not None and int(current) <= grace:
            return obj
        meta["deletionTimestamp"] = rfc3339(now() + dt.timedelta(seconds=grace))
        meta["deletionGracePeriodSeconds"] = grace
        if policy == "Orphan" and self._has_dependents(obj):
            meta["finalizers"] = [*(meta.get("finalizers") or []), "orphan"]
        return self.store.commit(rt, obj)

    def _remove(self, rt: ResourceType, obj: Obj, policy: str) -> Obj:
        meta = obj["metadata"]
        removed = self.store.remove(rt, meta.get("namespace", ""), meta["name"])
        if removed is not None:
            self._collect_dependents(meta["uid"], orphan=policy == "Orphan")
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": meta["name"], **({"group": rt.group} if rt.group else {}),
                            "kind": rt.plural, "uid": meta["uid"]}}

    def finish_pod_termination(self, namespace: str, name: str, uid: str) -> None:
        """The kubelet's final delete (grace 0) after it stopped a pod being deleted."""
        pod = self.store.get(PODS, namespace, name)
        if pod is None or pod["metadata"]["uid"] != uid or not pod["metadata"].get("deletionTimestamp"):
            return
        if pod["metadata"].get("finalizers"):
            if pod["metadata"].get("deletionGracePeriodSeconds") != 0:
                pod["metadata"]["deletionGracePeriodSeconds"] = 0
                self.store.commit(PODS, pod)
            return
        self._remove(PODS, pod, "Background")

    def _maybe_finish_deletion(self, rt: ResourceType, obj: Obj) -> Obj | None:
        """Remove an object being deleted once nothing holds it; returns None when it was removed."""
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp") or meta.get("finalizers"):
            return obj
        if rt.kind == "Pod" and (meta.get("deletionGracePeriodSeconds") or 0) > 0:
            return obj  # the kubelet has not confirmed termination yet
        if rt.kind == "Namespace" and (obj.get("spec") or {}).get("finalizers"):
            return obj
        self._remove(rt, obj, "Background")
        return None

    # -- garbage collection -----------------------------------------------------------------------------

    def _dependents(self, owner: Obj) -> builtins.list[tuple[ResourceType, Obj]]:
        uid = owner["metadata"]["uid"]
        return self.store.scan(lambda o: _owned_by(o, uid), owner["metadata"].get("namespace") or None)

    def _has_dependents(self, owner: Obj) -> bool:
        return bool(self._dependents(owner))

    def _collect_dependents(self, owner_uid: str, *, orphan: bool) -> None:
        for rt, o in self.store.scan(lambda obj: _owned_by(obj, owner_uid)):
            refs = o["metadata"].get("ownerReferences") or []
            if orphan:
                o["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != owner_uid]
                if not o["metadata"]["ownerReferences"]:
                    del o["metadata"]["ownerReferences"]
                self.store.commit(rt, o)
            elif not o["metadata"].get("deletionTimestamp") or rt.kind == "Pod":
                remaining = [r for r in refs if r.get("uid") != owner_uid and self._owner_alive(r, o)]
                if remaining:
                    continue  # another owner still holds it
                with contextlib.suppress(ApiError):
                    self.delete(rt, o["metadata"].get("namespace", ""), o["metadata"]["name"],
                                DeleteOptions(propagation="Background"))

    def _owner_alive(self, ref: dict[str, Any], dependent: Obj) -> bool:
        rt = reg.by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if rt is None:
            return False
        owner = self.store.get(rt, dependent["metadata"].get("namespace", ""), ref.get("name", ""))
        return owner is not None and owner["metadata"]["uid"] == ref.get("uid")

    def _process_gc_finalizers(self, rt: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if "orphan" in finalizers:
            self._collect_dependents(meta["uid"], orphan=True)
            self._drop_finalizer(rt, obj, "orphan")
        elif "foregroundDeletion" in finalizers:
            self._collect_dependents(meta["uid"], orphan=False)
            self.check_foreground(rt, obj)

    def check_foreground(self, rt: ResourceType, obj: Obj) -> None:
        current = self.store.get(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if current is None or "foregroundDeletion" not in (current["metadata"].get("finalizers") or []):
            return
        blocking = [o for _, o in self._dependents(current)]
        if not blocking:
            self._drop_finalizer(rt, current, "foregroundDeletion")

    def _drop_finalizer(self, rt: ResourceType, obj: Obj, finalizer: str) -> None:
        current = self.store.get(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if current is None:
            return
        current["metadata"]["finalizers"] = [f for f in current["metadata"].get("finalizers") or [] if f != finalizer]
        if not current["metadata"]["finalizers"]:
            del current["metadata"]["finalizers"]
        committed = self.store.commit(rt, current)
        self._maybe_finish_deletion(rt, committed)

    def on_change(self, change: Change) -> None:
        """Garbage collector and namespace controller, driven by store events."""
        if change.type == "DELETED":
            ns = change.namespace
            for rt, o in self.store.scan(lambda obj: "foregroundDeletion" in (obj["metadata"].get("finalizers") or [])):
                self.check_foreground(rt, o)
            if ns and change.rt.namespaced:
                nsobj = self.store.get(NAMESPACES, "", ns)
                if nsobj is not None and nsobj["metadata"].get("deletionTimestamp"):
                    self._finish_namespace(nsobj)

    # -- namespaces -------------------------------------------------------------------------------------

    def _delete_namespace(self, ns: Obj) -> Obj:
        meta = ns["metadata"]
        if not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = rfc3339()
            meta["deletionGracePeriodSeconds"] = 0
            ns["status"] = {"phase": "Terminating"}
            ns = self.store.commit(NAMESPACES, ns)
        name = meta["name"]
        for rt, o in list(self.store.all_in_namespace(name)):
            if o["metadata"].get("deletionTimestamp") and rt.kind != "Pod":
                continue
            with contextlib.suppress(ApiError):
                self.delete(rt, name, o["metadata"]["name"], DeleteOptions(propagation="Background"))
        self._finish_namespace(self.store.get(NAMESPACES, "", name) or ns)
        return self.store.get(NAMESPACES, "", name) or ns

    def _finish_namespace(self, ns: Obj) -> None:
        name = ns["metadata"]["name"]
        if not self.store.is_namespace_empty(name):
            return
        current = self.store.get(NAMESPACES, "", name)
        if current is None:
            return
        spec = current.setdefault("spec", {})
        if spec.get("finalizers"):
            spec["finalizers"] = []
            current = self.store.commit(NAMESPACES, current)
        self._maybe_finish_deletion(NAMESPACES, current)

    # -- delete collection ------------------------------------------------------------------------------

    def delete_collection(self, rt: ResourceType, namespace: str | None, labels: LabelSelector,
                          fields: FieldSelector, opts: DeleteOptions) -> Obj:
        listing = self.list(rt, namespace, labels, fields)
        items = []
        for o in listing["items"]:
            try:
                res = self.delete(rt, o["metadata"].get("namespace", ""), o["metadata"]["name"], opts)
            except ApiError as e:
                if e.code == 404:
                    continue
                raise
            items.append(o if res.get("kind") == "Status" else res)
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)}, "items": items}

    # -- internal writes used by controllers ----------------------------------------------------------

    def mutate(self, rt: ResourceType, namespace: str, name: str, fn: Callable[[Obj], None], *,
               uid: str | None = None) -> Obj | None:
        """Read-modify-write by a controller; no write when nothing changed. None if gone (or replaced)."""
        obj = self.store.get(rt, namespace, name)
        if obj is None or (uid is not None and obj["metadata"]["uid"] != uid):
            return None
        before = clone(obj)
        fn(obj)
        if _same(obj, before):
            return obj
        committed = self.store.commit(rt, obj)
        return self._maybe_finish_deletion(rt, committed)

    def emit_event(self, involved: Obj, type_: str, reason: str, message: str, component: str,
                   field_path: str | None = None) -> None:
        meta = involved["metadata"]
        ns = meta.get("namespace") or "default"
        ref: dict[str, Any] = {"kind": involved.get("kind", ""), "namespace": meta.get("namespace", ""),
                               "name": meta["name"], "uid": meta.get("uid", ""),
                               "apiVersion": involved.get("apiVersion", ""),
                               "resourceVersion": meta.get("resourceVersion", "")}
        if field_path:
            ref["fieldPath"] = field_path
        stamp = rfc3339()
        key = (ns, meta.get("uid", ""), field_path or "", reason, message, type_, component)
        existing = self._event_names.get(key)
        if existing is not None:  # the event recorder aggregates repeats into one Event with a count

            def bump(e: Obj) -> None:
                e["count"] = int(e.get("count", 1)) + 1
                e["lastTimestamp"] = stamp

            if self.mutate(EVENTS, ns, existing, bump) is not None:
                return
        event: Obj = {"apiVersion": "v1", "kind": "Event",
                 "metadata": {"name": f"{meta['name']}.{new_uid().replace('-', '')[:16]}", "namespace": ns},
                 "involvedObject": ref, "reason": reason, "message": message, "type": type_,
                 "source": {"component": component, **({"host": "kubesim-node"} if component == "kubelet" else {})},
                 "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
                 "reportingComponent": component, "reportingInstance": "kubesim-node" if component == "kubelet"
                 else ""}
        # e.g. when the namespace is terminating: real components lose such events too
        with contextlib.suppress(ApiError):
            self.create(EVENTS, ns, event)
            self._event_names[key] = event["metadata"]["name"]

    # -- tokens -----------------------------------------------------------------------------------------

    def token_request(self, namespace: str, name: str, body: Any) -> Obj:
        sa = self._existing(SERVICEACCOUNTS, namespace, name)
        if not isinstance(body, dict):
            raise ApiError.bad_request("the body of the request was not a TokenRequest")
        spec = body.get("spec") or {}
        seconds = spec.get("expirationSeconds", 3600)
        tr_name = name
        if not isinstance(seconds, int) or seconds < 600:
            raise ApiError(422, "Invalid", f'TokenRequest.authentication.k8s.io "{tr_name}" is invalid: '
                                           f"spec.expirationSeconds: Invalid value: {seconds}: may not specify a "
                                           f"duration less than 10 minutes",
                           {"name": tr_name, "group": "authentication.k8s.io", "kind": "TokenRequest",
                            "causes": [{"reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
                                        "message": f"Invalid value: {seconds}: may not specify a duration less "
                                                   f"than 10 minutes"}]})
        if seconds > 2**32:
            raise ApiError(422, "Invalid", f'TokenRequest.authentication.k8s.io "{tr_name}" is invalid: '
                                           f"spec.expirationSeconds: Invalid value: {seconds}: may not specify a "
                                           f"duration larger than 2^32 seconds")
        audiences = spec.get("audiences") or [ISSUER]
        issued = now()
        expires = issued + dt.timedelta(seconds=seconds)
        claims: dict[str, Any] = {"aud": audiences, "exp": int(expires.timestamp()), "iat": int(issued.timestamp()),
                  "nbf": int(issued.timestamp()), "iss": ISSUER,
                  "sub": f"system:serviceaccount:{namespace}:{name}", "jti": new_uid(),
                  "kubernetes.io": {"namespace": namespace,
                                    "serviceaccount": {"name": name, "uid": sa["metadata"]["uid"]}}}
        bound = spec.get("boundObjectRef")
        if bound:
            claims["kubernetes.io"][str(bound.get("kind", "")).lower()] = {"name": bound.get("name"),
                                                                            "uid": bound.get("uid")}
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
                "spec": {"audiences": audiences, "expirationSeconds": seconds,
                         "boundObjectRef": bound},
                "status": {"token": self.sign(claims), "expirationTimestamp": rfc3339(expires)}}

    def sign(self, claims: dict[str, Any]) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        header = b64(json.dumps({"alg": "HS256", "kid": "kubesim", "typ": "JWT"}).encode())
        payload = b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = hmac.new(self.signing_key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{b64(sig)}"

    def verify_service_account_token(self, token: str) -> User | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        expected = hmac.new(self.signing_key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            sig = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (ValueError, json.JSONDecodeError):
            return None
        if not hmac.compare_digest(sig, expected):
            return None
        if LEGACY_SECRET_CLAIM in claims:
            return self._verify_legacy(token, claims)
        if claims.get("exp", 0) < now().timestamp() + self.token_clock_offset:
            return None
        info = claims.get("kubernetes.io") or {}
        ns, sa = info.get("namespace"), (info.get("serviceaccount") or {})
        current = self.store.get(SERVICEACCOUNTS, ns or "", sa.get("name", ""))
        if current is None or current["metadata"]["uid"] != sa.get("uid"):
            return None  # the service account was deleted: its tokens die with it
        bound_pod = info.get("pod")
        if bound_pod:
            pod = self.store.get(PODS, ns or "", bound_pod.get("name", ""))
            if pod is None or pod["metadata"]["uid"] != bound_pod.get("uid"):
                return None
        return _service_account_user(str(ns), str(sa.get("name")))

    def legacy_token(self, secret: Obj, sa: Obj) -> str:
        """A long-lived token for a `kubernetes.io/service-account-token` Secret (the legacy format)."""
        ns, name = secret["metadata"]["namespace"], sa["metadata"]["name"]
        return self.sign({"iss": "kubernetes/serviceaccount", LEGACY_PREFIX + "namespace": ns,
                          LEGACY_SECRET_CLAIM: secret["metadata"]["name"],
                          LEGACY_PREFIX + "service-account.name": name,
                          LEGACY_PREFIX + "service-account.uid": sa["metadata"]["uid"],
                          "sub": f"system:serviceaccount:{ns}:{name}"})

    def _verify_legacy(self, token: str, claims: dict[str, Any]) -> User | None:
        """Valid while its Secret still holds it and its ServiceAccount is the same one."""
        ns = str(claims.get(LEGACY_PREFIX + "namespace", ""))
        secret = self.store.get(SECRETS, ns, str(claims[LEGACY_SECRET_CLAIM]))
        stored = ((secret or {}).get("data") or {}).get("token")
        if stored is None or base64.b64decode(stored).decode() != token:
            return None
        name = str(claims.get(LEGACY_PREFIX + "service-account.name", ""))
        sa = self.store.get(SERVICEACCOUNTS, ns, name)
        if sa is None or sa["metadata"]["uid"] != claims.get(LEGACY_PREFIX + "service-account.uid"):
            return None
        return _service_account_user(ns, name)


def _service_account_user(ns: str, name: str) -> User:
    return User(f"system:serviceaccount:{ns}:{name}",
                ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"), (ns, name))


def _owned_by(obj: Obj, uid: str) -> bool:
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def _sort_key(o: Obj) -> tuple[str, str]:
    return (str(o["metadata"].get("namespace", "")), str(o["metadata"]["name"]))


def _same(a: Obj, b: Obj) -> bool:
    """Equal but for the resourceVersion (compared without copying)."""
    if a.keys() != b.keys():
        return False
    for k in a:
        if k == "metadata":
            ma, mb = a[k] or {}, b[k] or {}
            if {x: y for x, y in ma.items() if x != "resourceVersion"} != \
                    {x: y for x, y in mb.items() if x != "resourceVersion"}:
                return False
        elif a[k] != b[k]:
            return False
    return True


def qos_class(spec: dict[str, Any]) -> str:
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        limits, requests = res.get("limits") or {}, res.get("requests") or {}
        if limits or requests:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in limits or requests.get(r, limits.get(r)) != limits.get(r):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
