"""apps/v1 Deployments and ReplicaSets: the two controllers that keep long-running pods alive.

Deployment → ReplicaSet `<deployment>-<pod-template-hash>` (the hash of the pod template, written as
the `pod-template-hash` label on the ReplicaSet, its selector and its pods) → pods `<rs>-<5 chars>`,
each with a controller ownerReference to its parent, so deleting a Deployment cascades through the
garbage collector (Background by default) exactly as on a real cluster. A changed template makes a new
ReplicaSet: `Recreate` scales the old ones to 0 and waits until their pods are gone before the new one
gets replicas; `RollingUpdate` gives the new one its replicas at once and scales the old ones to 0 when
the new pods are ready (maxSurge/maxUnavailable are not modelled step by step). Status: replicas,
updated/ready/available/unavailableReplicas, observedGeneration, Available and Progressing conditions.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from . import _registry as reg
from ._apiserver import PODS, DeleteOptions
from ._clock import NAME_ALPHABET, rfc3339
from ._errors import ApiError
from ._store import Obj, clone

if TYPE_CHECKING:
    from ._controllers import Controllers

DEPLOYMENTS = reg.by_key("deployments.apps")
REPLICASETS = reg.by_key("replicasets.apps")
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


def _controller_ref(obj: Obj) -> dict[str, Any] | None:
    return next((r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)


def _owned(store_objs: list[Obj], uid: str) -> list[Obj]:
    return [o for o in store_objs if (_controller_ref(o) or {}).get("uid") == uid]


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _active(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def template_hash(template: dict[str, Any], collisions: int = 0) -> str:
    """FNV-1a (32 bit) of the template, spelt with the safe alphabet, like the controller's hash."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode() + str(collisions).encode()
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    out = ""
    while True:
        h, rem = divmod(h, len(NAME_ALPHABET))
        out += NAME_ALPHABET[rem]
        if not h:
            break
    return out[:10]


def _without_hash(template: dict[str, Any]) -> dict[str, Any]:
    t = clone(template)
    labels = (t.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return t


class Workloads:
    """Deployment and ReplicaSet reconcilers, driven by the shared controller queue."""

    def __init__(self, controllers: Controllers) -> None:
        self.c = controllers
        self.api = controllers.api

    # -- events -> queue ----------------------------------------------------------------------------

    def on_change(self, rt: reg.ResourceType, obj: Obj, namespace: str, name: str) -> None:
        if rt is PODS:
            ref = _controller_ref(obj)
            if ref is not None and ref.get("kind") == "ReplicaSet":
                self.c.enqueue("replicaset", namespace, ref["name"])
                # a Recreate rollout waits for the old pods to be gone, not only for the count to drop
                rs = self.api.store.get(REPLICASETS, namespace, ref["name"])
                owner = _controller_ref(rs) if rs is not None else None
                if owner is not None and owner.get("kind") == "Deployment":
                    self.c.enqueue("deployment", namespace, owner["name"])
        elif rt is REPLICASETS:
            self.c.enqueue("replicaset", namespace, name)
            ref = _controller_ref(obj)
            if ref is not None and ref.get("kind") == "Deployment":
                self.c.enqueue("deployment", namespace, ref["name"])
        elif rt is DEPLOYMENTS:
            self.c.enqueue("deployment", namespace, name)

    # -- ReplicaSet -----------------------------------------------------------------------------------

    def reconcile_replicaset(self, namespace: str, name: str) -> None:
        rs = self.api.store.get(REPLICASETS, namespace, name)
        if rs is None:
            return
        uid = rs["metadata"]["uid"]
        pods = _owned(self.api.store.list(PODS, namespace), uid)
        active = [p for p in pods if _active(p)]
        if not rs["metadata"].get("deletionTimestamp"):
            want = int((rs.get("spec") or {}).get("replicas", 1))
            for _ in range(want - len(active)):
                created = self._create_pod(rs)
                if created is None:
                    break
                active.append(created)
            if len(active) > want:
                # like the real controller: unscheduled, then not ready, then the newest go first
                def rank(p: Obj) -> tuple[int, int, str]:
                    return (1 if (p.get("spec") or {}).get("nodeName") else 0, 1 if _ready(p) else 0,
                            "~" + p["metadata"]["creationTimestamp"])

                for pod in sorted(active, key=rank)[: len(active) - want]:
                    self._delete_pod(rs, pod)
                    active.remove(pod)
        ready = sum(1 for p in active if _ready(p))
        selector = (rs.get("spec") or {}).get("selector") or {}
        labelled = sum(1 for p in active
                       if all((p["metadata"].get("labels") or {}).get(k) == v
                              for k, v in (selector.get("matchLabels") or {}).items()))
        status = {"replicas": len(active), "fullyLabeledReplicas": labelled, "readyReplicas": ready,
                  "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)}
        status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}

        def write(o: Obj) -> None:
            o["status"] = status

        self.api.mutate(REPLICASETS, namespace, name, write, uid=uid)

    def _create_pod(self, rs: Obj) -> Obj | None:
        meta, tmpl = rs["metadata"], clone(rs["spec"]["template"])
        tmeta = tmpl.get("metadata") or {}
        pod: Obj = {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"generateName": f"{meta['name'][:57]}-", "labels": tmeta.get("labels") or {},
                                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                      "name": meta["name"], "uid": meta["uid"],
                                                      "controller": True, "blockOwnerDeletion": True}]},
                    "spec": tmpl["spec"]}
        if tmeta.get("annotations"):
            pod["metadata"]["annotations"] = tmeta["annotations"]
        try:
            created = self.api.create(PODS, meta["namespace"], pod)
        except ApiError as e:
            self.api.emit_event(rs, "Warning", "FailedCreate", f"Error creating: {e.message}",
                                "replicaset-controller")
            self.c.later(self.c.options.job_backoff_base, "replicaset", meta["namespace"], meta["name"])
            return None
        self.api.emit_event(rs, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                            "replicaset-controller")
        return created

    def _delete_pod(self, rs: Obj, pod: Obj) -> None:
        try:
            self.api.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"],
                            DeleteOptions(preconditions={"uid": pod["metadata"]["uid"]}))
        except ApiError:
            return
        self.api.emit_event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}",
                            "replicaset-controller")

    # -- Deployment -----------------------------------------------------------------------------------

    def reconcile_deployment(self, namespace: str, name: str) -> None:
        dep = self.api.store.get(DEPLOYMENTS, namespace, name)
        if dep is None or dep["metadata"].get("deletionTimestamp"):
            return
        uid = dep["metadata"]["uid"]
        spec = dep.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        owned = _owned(self.api.store.list(REPLICASETS, namespace), uid)
        template = spec.get("template") or {}
        new = next((rs for rs in owned if _without_hash(rs["spec"]["template"]) == template), None)
        old = [rs for rs in owned if rs is not new]
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        revisions = [int((rs["metadata"].get("annotations") or {}).get(REVISION, "0")) for rs in owned]
        short = new is None or int(new["spec"].get("replicas", 0)) < replicas
        if recreate and short:
            # everything old goes first; the new ReplicaSet gets replicas only once its pods are gone
            for rs in old:
                self._scale(dep, rs, 0)
            if any(_owned(self.api.store.list(PODS, namespace), rs["metadata"]["uid"]) for rs in old):
                self._write_status(dep, owned, new)
                return
        if new is None:
            new = self._create_replicaset(dep, template, replicas, max(revisions, default=0) + 1)
            if new is None:
                return
            owned = [*owned, new]
        else:
            self._scale(dep, new, replicas)
            new = self.api.store.get(REPLICASETS, namespace, new["metadata"]["name"]) or new
        if int((new.get("status") or {}).get("readyReplicas", 0)) >= replicas or recreate:
            for rs in old:
                self._scale(dep, rs, 0)
        keep = int(spec.get("revisionHistoryLimit", 10))
        idle = sorted((rs for rs in old if not int(rs["spec"].get("replicas", 0))
                       and not (rs.get("status") or {}).get("replicas")),
                      key=lambda rs: int((rs["metadata"].get("annotations") or {}).get(REVISION, "0")))
        for rs in idle[: max(0, len(idle) - keep)]:
            with contextlib.suppress(ApiError):
                self.api.delete(REPLICASETS, namespace, rs["metadata"]["name"],
                                DeleteOptions(preconditions={"uid": rs["metadata"]["uid"]}))
        self._write_status(dep, owned, new)

    def _create_replicaset(self, dep: Obj, template: dict[str, Any], replicas: int, revision: int) -> Obj | None:
        meta, spec = dep["metadata"], dep.get("spec") or {}
        collisions = int((dep.get("status") or {}).get("collisionCount", 0))
        pod_hash = template_hash(template, collisions)
        tmpl = clone(template)
        tmpl.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = clone(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        rs: Obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                   "metadata": {"name": f"{meta['name']}-{pod_hash}",
                                "labels": {**(tmpl["metadata"].get("labels") or {})},
                                "annotations": {REVISION: str(revision),
                                                "deployment.kubernetes.io/desired-replicas": str(replicas),
                                                "deployment.kubernetes.io/max-replicas": str(replicas)},
                                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                     "name": meta["name"], "uid": meta["uid"],
                                                     "controller": True, "blockOwnerDeletion": True}]},
                   "spec": {"replicas": replicas, "selector": selector, "template": tmpl,
                            "minReadySeconds": int(spec.get("minReadySeconds", 0))}}
        try:
            created = self.api.create(REPLICASETS, meta["namespace"], rs)
        except ApiError as e:
            if e.code == 409:  # a hash collision with someone else's ReplicaSet: count it, hash again
                def bump(o: Obj) -> None:
                    o.setdefault("status", {})["collisionCount"] = collisions + 1

                self.api.mutate(DEPLOYMENTS, meta["namespace"], meta["name"], bump, uid=meta["uid"])
            return None
        self.api.emit_event(dep, "Normal", "ScalingReplicaSet",
                            f"Scaled up replica set {created['metadata']['name']} to {replicas}",
                            "deployment-controller")
        return created

    def _scale(self, dep: Obj, rs: Obj, replicas: int) -> None:
        current = int((rs.get("spec") or {}).get("replicas", 0))
        if current == replicas:
            return

        def scale(o: Obj) -> None:
            o["spec"]["replicas"] = replicas
            o["metadata"]["generation"] = int(o["metadata"].get("generation", 1)) + 1
            o["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = str(
                (dep.get("spec") or {}).get("replicas", 1))

        self.api.mutate(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], scale,
                        uid=rs["metadata"]["uid"])
        verb = "up" if replicas > current else "down"
        self.api.emit_event(dep, "Normal", "ScalingReplicaSet",
                            f"Scaled {verb} replica set {rs['metadata']['name']} to {replicas}",
                            "deployment-controller")

    def _write_status(self, dep: Obj, owned: list[Obj], new: Obj | None) -> None:
        ns = dep["metadata"]["namespace"]
        fresh = [self.api.store.get(REPLICASETS, ns, rs["metadata"]["name"]) or rs for rs in owned]
        replicas = int((dep.get("spec") or {}).get("replicas", 1))
        total = sum(int((rs.get("status") or {}).get("replicas", 0)) for rs in fresh)
        ready = sum(int((rs.get("status") or {}).get("readyReplicas", 0)) for rs in fresh)
        available = sum(int((rs.get("status") or {}).get("availableReplicas", 0)) for rs in fresh)
        updated = 0
        if new is not None:
            current = self.api.store.get(REPLICASETS, ns, new["metadata"]["name"]) or new
            updated = int((current.get("status") or {}).get("replicas", 0))
        old_status = dep.get("status") or {}
        status: dict[str, Any] = {"observedGeneration": dep["metadata"].get("generation", 1), "replicas": total,
                                  "updatedReplicas": updated, "readyReplicas": ready,
                                  "availableReplicas": available,
                                  "unavailableReplicas": max(0, replicas - available)}
        status = {k: v for k, v in status.items() if v or k == "observedGeneration"}
        if "collisionCount" in old_status:
            status["collisionCount"] = old_status["collisionCount"]
        conds = {c["type"]: c for c in old_status.get("conditions") or []}
        stamp = rfc3339()

        def cond(type_: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
            prev = conds.get(type_)
            value = "True" if ok else "False"
            changed = prev is None or prev.get("status") != value
            same = prev is not None and not changed and prev.get("reason") == reason
            return {"type": type_, "status": value, "lastUpdateTime": prev["lastUpdateTime"] if same and prev
                    else stamp, "lastTransitionTime": stamp if changed or prev is None
                    else prev["lastTransitionTime"], "reason": reason, "message": message}

        available_ok = available >= replicas
        complete = new is not None and updated == replicas and available >= replicas and total == replicas
        rs_name = new["metadata"]["name"] if new is not None else dep["metadata"]["name"]
        status["conditions"] = [
            cond("Available", available_ok, "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
                 "Deployment has minimum availability." if available_ok
                 else "Deployment does not have minimum availability."),
            cond("Progressing", True, "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                 f'ReplicaSet "{rs_name}" has successfully progressed.' if complete
                 else f'ReplicaSet "{rs_name}" is progressing.'),
        ]

        def write(o: Obj) -> None:
            o["status"] = status

        self.api.mutate(DEPLOYMENTS, ns, dep["metadata"]["name"], write, uid=dep["metadata"]["uid"])
