"""Control-plane controllers: scheduler, volume binder, Job controller (with TTL-after-finished), and the
Deployment and ReplicaSet controllers (`_workloads.py`).

They react to store events through one work queue (keys are deduplicated while queued) and write
through the API server like their real counterparts. Job semantics follow batch/v1 as of 1.31: pods
named `<job>-<5 chars>` with `job-name`/`controller-uid` labels, an owner reference and the
`batch.kubernetes.io/job-tracking` finalizer; `backoffLimit` with exponential back-off between
retries; `activeDeadlineSeconds` → FailureTarget then Failed/DeadlineExceeded once the pods are gone;
Complete with completionTime; `ttlSecondsAfterFinished`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from . import _registry as reg
from ._apiserver import NODES, PODS, ApiServer, DeleteOptions
from ._clock import now, parse_rfc3339, rfc3339
from ._errors import ApiError
from ._kubelet import NODE_NAME
from ._selectors import LabelSelector, Requirement
from ._store import Change, Obj, clone
from ._validation import parse_quantity

if TYPE_CHECKING:
    from ._sim import SimOptions

JOBS = reg.by_key("jobs.batch")
PVCS = reg.by_key("persistentvolumeclaims")
TRACKING = "batch.kubernetes.io/job-tracking"
log = logging.getLogger("kubesim")


@dataclass
class JobTrack:
    known: set[str] = field(default_factory=set)
    succeeded: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    last_failure: float = 0.0
    started: float | None = None  # loop time of startTime: status timestamps only have whole seconds
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)


def controller_ref(obj: Obj) -> dict[str, Any] | None:
    return next((r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_ and c.get("status") == "True"),
                None)


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


class Controllers:
    def __init__(self, api: ApiServer, options: SimOptions) -> None:
        self.api = api
        self.options = options
        self.queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
        self.queued: set[tuple[str, str, str]] = set()
        self.tracks: dict[str, JobTrack] = {}
        self.task: asyncio.Task[None] | None = None
        self.scheduling_ready: set[str] = set()  # pods whose schedule_delay has been served
        from ._workloads import Workloads

        self.workloads = Workloads(self)
        api.store.subscribe(self._on_change)

    # -- queue ----------------------------------------------------------------------------------------

    def enqueue(self, kind: str, namespace: str, name: str) -> None:
        key = (kind, namespace, name)
        if key not in self.queued:
            self.queued.add(key)
            self.queue.put_nowait(key)

    def later(self, delay: float, kind: str, namespace: str, name: str) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), self.enqueue, kind, namespace, name)

    async def run(self) -> None:
        while True:
            key = await self.queue.get()
            self.queued.discard(key)
            kind, ns, name = key
            try:
                if kind == "schedule":
                    self.schedule(ns, name)
                elif kind == "job":
                    self.reconcile_job(ns, name)
                elif kind == "pvc":
                    self.bind_claim(ns, name)
                elif kind == "ttl":
                    self.expire_job(ns, name)
                elif kind == "replicaset":
                    self.workloads.reconcile_replicaset(ns, name)
                elif kind == "deployment":
                    self.workloads.reconcile_deployment(ns, name)
            except ApiError as e:  # a controller loses races like any other client; it retries on the next event
                log.debug("controller %s %s/%s: %s", kind, ns, name, e.message)
            except Exception:
                log.exception("controller %s %s/%s failed", kind, ns, name)

    def _on_change(self, change: Change) -> None:
        rt, obj = change.rt, change.obj
        ns, name = change.namespace, change.name
        self.workloads.on_change(rt, obj, ns, name)
        if rt is PODS:
            if change.type != "DELETED" and not (obj.get("spec") or {}).get("nodeName") \
                    and not obj["metadata"].get("deletionTimestamp"):
                self.enqueue("schedule", ns, name)
            ref = controller_ref(obj)
            if ref is not None and ref.get("kind") == "Job":
                self.enqueue("job", ns, ref["name"])
            elif TRACKING in (obj["metadata"].get("finalizers") or []):
                self.enqueue("job", ns, "")  # an orphan still carrying the tracking finalizer
        elif rt is JOBS:
            if change.type == "DELETED":
                track = self.tracks.pop(obj["metadata"]["uid"], None)
                for t in (track.timers.values() if track else []):
                    t.cancel()
                for pod in self.api.store.list(PODS, ns):
                    if TRACKING in (pod["metadata"].get("finalizers") or []):
                        self.enqueue("job", ns, "")
                        break
            else:
                self.enqueue("job", ns, name)
        elif rt is PVCS and change.type != "DELETED":
            self.enqueue("pvc", ns, name)
            self._retry_unscheduled(ns)
        elif rt is NODES:
            self._retry_unscheduled(None)

    def _retry_unscheduled(self, namespace: str | None) -> None:
        for pod in self.api.store.list(PODS, namespace):
            if not (pod.get("spec") or {}).get("nodeName") and not pod["metadata"].get("deletionTimestamp"):
                self.enqueue("schedule", pod["metadata"]["namespace"], pod["metadata"]["name"])

    # -- scheduler ------------------------------------------------------------------------------------

    def _unschedulable_reasons(self, pod: Obj) -> tuple[str | None, list[str]]:
        spec = pod.get("spec") or {}
        ns = pod["metadata"]["namespace"]
        for v in spec.get("volumes") or []:
            claim = v.get("persistentVolumeClaim")
            if claim and self.api.store.get(PVCS, ns, claim.get("claimName", "")) is None:
                return f'persistentvolumeclaim "{claim.get("claimName")}" not found', []
        node = self.api.store.get(NODES, "", NODE_NAME)
        if node is None:
            return "no nodes available to schedule pods", []
        labels = node["metadata"].get("labels") or {}
        reasons: list[str] = []
        reasons += self._insufficient(pod, node)
        if (node.get("spec") or {}).get("unschedulable"):
            reasons.append("1 node(s) were unschedulable")
        if not _node_matches(spec, node, labels):
            reasons.append("1 node(s) didn't match Pod's node affinity/selector")
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(spec, taint):
                reasons.append(f"1 node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}")
                break
        return None, reasons

    def _insufficient(self, pod: Obj, node: Obj) -> list[str]:
        """NodeResourcesFit: the requests of the pods on the node plus this one against allocatable."""
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        on_node = self.api.store.select(PODS, None, lambda p: (p.get("spec") or {}).get("nodeName") == NODE_NAME
                                        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))
        out: list[str] = []
        if "pods" in allocatable and len(on_node) + 1 > int(allocatable["pods"]):
            out.append("1 Too many pods")
        for resource in ("cpu", "memory", "ephemeral-storage"):
            if resource not in allocatable:
                continue
            want = _requests(pod).get(resource, Decimal(0))
            if not want:
                continue
            used = sum((_requests(p).get(resource, Decimal(0)) for p in on_node), Decimal(0))
            if used + want > parse_quantity(allocatable[resource]):
                out.append(f"1 Insufficient {resource}")
        return out

    def schedule(self, namespace: str, name: str) -> None:
        pod = self.api.store.get(PODS, namespace, name)
        if pod is None or (pod.get("spec") or {}).get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            return
        if (pod.get("spec") or {}).get("schedulerName", "default-scheduler") != "default-scheduler":
            return  # another scheduler's pod: it stays Pending here, as it would without that scheduler
        blocker, reasons = self._unschedulable_reasons(pod)
        if blocker or reasons:
            detail = blocker or ", ".join(reasons)
            msg = (f"0/1 nodes are available: {detail}. preemption: 0/1 nodes are available: "
                   f"1 Preemption is not helpful for scheduling.")

            def mark(p: Obj) -> None:
                status = p.setdefault("status", {})
                status["phase"] = "Pending"
                conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
                old = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
                stamp = old["lastTransitionTime"] if old and old.get("status") == "False" else rfc3339()
                conds.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                              "lastTransitionTime": stamp, "reason": "Unschedulable", "message": msg})
                status["conditions"] = conds

            self.api.mutate(PODS, namespace, name, mark, uid=pod["metadata"]["uid"])
            # one event per failed attempt; the recorder folds repeats into a count
            self.api.emit_event(pod, "Warning", "FailedScheduling", msg, "default-scheduler")
            return
        uid = pod["metadata"]["uid"]
        if self.options.schedule_delay > 0 and uid not in self.scheduling_ready:
            # the latency of a real scheduler: bind later (the pod may be gone or changed by then)
            self.scheduling_ready.add(uid)
            self.later(self.options.schedule_delay, "schedule", namespace, name)
            return
        self.scheduling_ready.discard(uid)
        self.bind(namespace, name, NODE_NAME)

    def bind(self, namespace: str, name: str, node: str) -> Obj:
        pod = self.api.get(PODS, namespace, name)
        current = (pod.get("spec") or {}).get("nodeName")
        if current:
            raise ApiError.conflict(PODS, name, f'pod {name} is already assigned to node "{current}"')
        if node != NODE_NAME:
            raise ApiError.not_found(NODES, node)

        def assign(p: Obj) -> None:
            p["spec"]["nodeName"] = node
            status = p.setdefault("status", {})
            conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": rfc3339()})
            status["conditions"] = conds

        result = self.api.mutate(PODS, namespace, name, assign, uid=pod["metadata"]["uid"])
        self.api.emit_event(pod, "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {node}",
                            "default-scheduler")
        return result or pod

    # -- volumes --------------------------------------------------------------------------------------

    def bind_claim(self, namespace: str, name: str) -> None:
        pvc = self.api.store.get(PVCS, namespace, name)
        if pvc is None or (pvc.get("status") or {}).get("phase") == "Bound":
            return
        size = (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage", "1Gi")

        def bound(o: Obj) -> None:
            o["spec"]["volumeName"] = f"pvc-{o['metadata']['uid']}"
            o["spec"].setdefault("storageClassName", "standard")
            o["metadata"].setdefault("annotations", {}).update({
                "pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"})
            o["status"] = {"phase": "Bound", "accessModes": o["spec"].get("accessModes", []),
                           "capacity": {"storage": size}}

        self.api.mutate(PVCS, namespace, name, bound, uid=pvc["metadata"]["uid"])

    # -- jobs -----------------------------------------------------------------------------------------

    def _release_orphans(self, namespace: str) -> None:
        """Drop the tracking finalizer from pods whose Job is gone (or no longer tracks them)."""
        store = self.api.store

        def orphaned(p: Obj) -> bool:
            if TRACKING not in (p["metadata"].get("finalizers") or []):
                return False
            ref = controller_ref(p)
            if ref is None or ref.get("kind") != "Job":
                return True
            return store.uid_of(JOBS, namespace, str(ref.get("name"))) != ref.get("uid")

        for pod in store.select(PODS, namespace, orphaned):
            self._drop_tracking(pod)

    def _drop_tracking(self, pod: Obj) -> None:
        def drop(p: Obj) -> None:
            p["metadata"]["finalizers"] = [f for f in p["metadata"].get("finalizers") or [] if f != TRACKING]
            if not p["metadata"]["finalizers"]:
                del p["metadata"]["finalizers"]

        self.api.mutate(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], drop,
                        uid=pod["metadata"]["uid"])

    def reconcile_job(self, namespace: str, name: str) -> None:
        self._release_orphans(namespace)
        if not name:
            return
        job = self.api.store.get(JOBS, namespace, name)
        if job is None:
            return
        uid = job["metadata"]["uid"]
        track = self.tracks.setdefault(uid, JobTrack())
        loop = asyncio.get_running_loop()
        pods = self.api.store.select(PODS, namespace, lambda p: (controller_ref(p) or {}).get("uid") == uid)
        present = {p["metadata"]["uid"] for p in pods}
        for p in pods:
            puid, phase = p["metadata"]["uid"], (p.get("status") or {}).get("phase")
            track.known.add(puid)
            if phase == "Succeeded":
                track.succeeded.add(puid)
            elif phase == "Failed" and puid not in track.failed:
                track.failed.add(puid)
                track.last_failure = loop.time()
        for puid in track.known - present - track.succeeded - track.failed:
            track.failed.add(puid)  # removed before it finished: counts as a failure
            track.last_failure = loop.time()
        for p in pods:
            if (_terminal(p) and TRACKING in (p["metadata"].get("finalizers") or [])) or (p["metadata"].get("deletionTimestamp") and not (p.get("spec") or {}).get("nodeName")):
                self._drop_tracking(p)
        if job["metadata"].get("deletionTimestamp"):
            return
        spec, status = job.get("spec") or {}, clone(job.get("status") or {})
        active = [p for p in pods if not _terminal(p) and not p["metadata"].get("deletionTimestamp")]
        terminating = [p for p in pods if not _terminal(p) and p["metadata"].get("deletionTimestamp")]
        finished = _condition(status, "Complete") or _condition(status, "Failed")
        if finished:
            self._schedule_ttl(job, track)
            return
        if spec.get("suspend"):
            for p in active:
                self._delete_pod(job, p)
            status.pop("startTime", None)
            self._write_status(job, status, [], terminating, track)
            return
        if not status.get("startTime"):
            status["startTime"] = rfc3339()
            track.started = loop.time()
        start = parse_rfc3339(status["startTime"])
        elapsed = loop.time() - track.started if track.started is not None else (now() - start).total_seconds()
        ads = spec.get("activeDeadlineSeconds")
        completions = int(spec.get("completions") or 1) if spec.get("completions") is not None else None
        parallelism = int(spec.get("parallelism", 1))
        failure: tuple[str, str] | None = None
        target = _condition(status, "FailureTarget")
        if target is not None:
            failure = (target.get("reason", ""), target.get("message", ""))
        elif ads and elapsed >= ads:
            failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
        elif len(track.failed) > int(spec.get("backoffLimit", 6)):
            failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        if failure is not None:
            if target is None:
                self._add_condition(status, "FailureTarget", *failure)
                self.api.emit_event(job, "Warning", failure[0], failure[1], "job-controller")
            for p in active:
                self._delete_pod(job, p)
            terminating = terminating + active
            active = []
            still_running = [p for p in terminating if self.api.store.get(PODS, namespace, p["metadata"]["name"])]
            if not still_running:
                self._add_condition(status, "Failed", *failure)
            self._write_status(job, status, active, still_running, track)
            return
        succeeded = len(track.succeeded)
        goal = completions if completions is not None else 1
        if succeeded >= goal or (completions is None and succeeded > 0):
            for p in active:
                self._delete_pod(job, p)
            if not active and not terminating:
                status["completionTime"] = rfc3339()
                self._add_condition(status, "Complete", None, None)
                self.api.emit_event(job, "Normal", "Completed", "Job completed", "job-controller")
            self._write_status(job, status, [], terminating + active, track)
            return
        want = min(parallelism, goal - succeeded) - len(active)
        if spec.get("podReplacementPolicy") == "Failed":
            want -= len(terminating)
        if want > 0:
            delay = 0.0
            if track.failed:
                backoff = min(self.options.job_backoff_base * (2 ** (len(track.failed) - 1)), 360.0)
                delay = track.last_failure + backoff - loop.time()
            if delay > 0:
                self._timer(track, "backoff", delay, namespace, name)
            else:
                for _ in range(want):
                    created = self._create_pod(job)
                    if created is None:
                        break
                    active.append(created)
        if ads:
            remaining = ads - elapsed
            self._timer(track, "deadline", remaining, namespace, name)
        self._write_status(job, status, active, terminating, track)

    def _timer(self, track: JobTrack, key: str, delay: float, namespace: str, name: str) -> None:
        old = track.timers.pop(key, None)
        if old is not None:
            old.cancel()
        track.timers[key] = self.later(delay + 0.01, "job", namespace, name)

    @staticmethod
    def _add_condition(status: dict[str, Any], type_: str, reason: str | None, message: str | None) -> None:
        if _condition(status, type_):
            return
        stamp = rfc3339()
        cond: dict[str, Any] = {"type": type_, "status": "True", "lastProbeTime": stamp, "lastTransitionTime": stamp}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        status.setdefault("conditions", []).append(cond)

    def _write_status(self, job: Obj, status: dict[str, Any], active: list[Obj], terminating: list[Obj],
                      track: JobTrack) -> None:
        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if _ready(p))
        status["terminating"] = len(terminating)
        status["uncountedTerminatedPods"] = {}
        for key, value in (("succeeded", len(track.succeeded)), ("failed", len(track.failed))):
            if value:
                status[key] = value
            else:
                status.pop(key, None)
        if not status["active"]:
            status.pop("active")

        def write(o: Obj) -> None:
            o["status"] = status

        self.api.mutate(JOBS, job["metadata"]["namespace"], job["metadata"]["name"], write,
                        uid=job["metadata"]["uid"])

    def _create_pod(self, job: Obj) -> Obj | None:
        meta, tmpl = job["metadata"], clone(job["spec"]["template"])
        tmeta = tmpl.get("metadata") or {}
        base = f"{meta['name']}-"
        if len(base) > 58:
            base = base[:58]
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"generateName": base, "labels": tmeta.get("labels") or {},
                            "annotations": tmeta.get("annotations") or {},
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                                 "uid": meta["uid"], "controller": True,
                                                 "blockOwnerDeletion": True}],
                            "finalizers": [TRACKING]},
               "spec": tmpl["spec"]}
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        try:
            created = self.api.create(PODS, meta["namespace"], pod)
        except ApiError as e:
            self.api.emit_event(job, "Warning", "FailedCreate", f"Error creating: {e.message}", "job-controller")
            track = self.tracks.setdefault(meta["uid"], JobTrack())
            self._timer(track, "create", self.options.job_backoff_base, meta["namespace"], meta["name"])
            return None
        self.api.emit_event(job, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                            "job-controller")
        return created

    def _delete_pod(self, job: Obj, pod: Obj) -> None:
        try:
            self.api.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"],
                            DeleteOptions(propagation="Background", preconditions={"uid": pod["metadata"]["uid"]}))
        except ApiError:
            return
        self.api.emit_event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}",
                            "job-controller")

    def _schedule_ttl(self, job: Obj, track: JobTrack) -> None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None or "ttl" in track.timers:
            return
        status = job.get("status") or {}
        done = status.get("completionTime") or (_condition(status, "Failed") or {}).get("lastTransitionTime")
        finished_at = parse_rfc3339(done) if done else now()
        delay = float(ttl) - (now() - finished_at).total_seconds()
        track.timers["ttl"] = self.later(delay, "ttl", job["metadata"]["namespace"], job["metadata"]["name"])

    def expire_job(self, namespace: str, name: str) -> None:
        job = self.api.store.get(JOBS, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        self.api.delete(JOBS, namespace, name, DeleteOptions(propagation="Foreground",
                                                             preconditions={"uid": job["metadata"]["uid"]}))


def _requests(pod: Obj) -> dict[str, Decimal]:
    """Effective requests: the sum over containers, or the largest init container when that is more."""
    spec = pod.get("spec") or {}
    total: dict[str, Decimal] = {}
    for c in spec.get("containers") or []:
        for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
            total[k] = total.get(k, Decimal(0)) + parse_quantity(v)
    for c in spec.get("initContainers") or []:
        for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
            total[k] = max(total.get(k, Decimal(0)), parse_quantity(v))
    return total


def _node_matches(spec: dict[str, Any], node: Obj, labels: dict[str, str]) -> bool:
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for term in terms:
        ok = True
        for expr in term.get("matchExpressions") or []:
            op = expr.get("operator")
            value = labels.get(expr.get("key", ""))
            if op in ("Gt", "Lt"):
                try:
                    have, want = int(value or ""), int((expr.get("values") or ["0"])[0])
                except ValueError:
                    ok = False
                    break
                ok = have > want if op == "Gt" else have < want
            else:
                req = Requirement(expr.get("key", ""), ops.get(op, "in"), tuple(expr.get("values") or ()))
                ok = LabelSelector((req,)).matches(labels)
            if not ok:
                break
        for expr in term.get("matchFields") or [] if ok else []:
            if expr.get("key") == "metadata.name":
                inside = node["metadata"]["name"] in (expr.get("values") or [])
                ok = inside if expr.get("operator") == "In" else not inside
        if ok:
            return True
    return False


def _tolerates(spec: dict[str, Any], taint: dict[str, Any]) -> bool:
    for t in spec.get("tolerations") or []:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False
