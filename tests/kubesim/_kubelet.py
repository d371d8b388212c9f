"""The simulated node: runs the pods bound to it as local process trees and reports their status.

Per pod: volumes are materialised under the pod's sandbox directory, init containers run strictly
one after another, then the containers run concurrently; every state change (waiting → running →
terminated, phase, conditions) is written to the pod's status through the API server, so a watch sees
each transition. Images are not pulled (the host's tools run) except that images in the
`unpullable` set stay Waiting with ErrImagePull/ImagePullBackOff. Deleting a pod sends TERM to each
container's main process, waits the grace period, then kills the whole process tree.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import fnmatch
import json
import logging
import os
import re
import secrets
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.datastructures import QueryParams
from starlette.responses import Response, StreamingResponse

from . import _registry as reg
from ._apiserver import PODS, ApiServer
from ._clock import now, rfc3339, rfc3339_nano
from ._errors import ApiError
from ._sandbox import Mount, bwrap_args, host_path_for, resolve_in_container
from ._store import Change, Obj

if TYPE_CHECKING:
    from ._sim import SimOptions

log = logging.getLogger("kubesim")
CONFIGMAPS = reg.by_key("configmaps")
SECRETS = reg.by_key("secrets")
PVCS = reg.by_key("persistentvolumeclaims")
SERVICEACCOUNTS = reg.by_key("serviceaccounts")
NODE_NAME = "kubesim-node"
POD_IP = "127.0.0.1"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def pod_path() -> str:
    """The PATH of every container: the host's, with the directory of this Python (the project's venv)
    first — the stand-in's "images" are the host's tools, and the shoal image has `shoal` and `python3`
    with shoal installed on its PATH."""
    here = os.path.dirname(sys.executable)
    rest = [d for d in os.environ.get("PATH", DEFAULT_PATH).split(":") if d and d != here]
    return ":".join([here, *rest])
READ_ONLY_SOURCES = ("configMap", "secret", "projected", "downwardAPI")


class ConfigError(Exception):
    """A container's configuration references something that is missing (CreateContainerConfigError)."""


class MountError(Exception):
    """A volume cannot be set up yet (FailedMount): the pod stays in ContainerCreating."""


# -- logs ---------------------------------------------------------------------------------------------

class LogBuffer:
    """One container instance's output, line by line with the time each line arrived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[tuple[dt.datetime, bytes]] = []
        self.closed = False
        self._changed = asyncio.Event()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")

    def append(self, data: bytes) -> None:
        self.records.append((now(), data))
        self._file.write(data)
        self._file.flush()
        self._wake()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._file.close()
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def next_change(self) -> asyncio.Event:
        """The event set by the next append or close; take it *before* reading `records`."""
        return self._changed


# -- container and pod state --------------------------------------------------------------------------

@dataclass
class Container:
    spec: dict[str, Any]
    init: bool
    state: dict[str, Any] = field(default_factory=dict)
    last_state: dict[str, Any] = field(default_factory=dict)
    restart_count: int = 0
    container_id: str = ""
    log: LogBuffer | None = None
    proc: asyncio.subprocess.Process | None = None
    main_pid: int | None = None
    started: bool = False

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def is_sidecar(self) -> bool:
        return self.init and self.spec.get("restartPolicy") == "Always"

    @property
    def terminated(self) -> dict[str, Any] | None:
        t = self.state.get("terminated")
        return t if isinstance(t, dict) else None

    def status(self) -> dict[str, Any]:
        image = str(self.spec.get("image", ""))
        out: dict[str, Any] = {
            "name": self.name, "state": self.state, "lastState": self.last_state,
            # a completed init container reports ready, as the kubelet does; a running one does not
            "ready": ("running" in self.state and (not self.init or self.is_sidecar)) or (
                self.init and not self.is_sidecar and (self.terminated or {}).get("exitCode") == 0),
            "restartCount": self.restart_count, "image": image,
            "imageID": f"docker.io/library/{image}@sha256:{'0' * 64}" if self.container_id else "",
            "started": "running" in self.state,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


class PodWorker:
    """Runs one pod and renders its status."""

    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        self.kubelet = kubelet
        self.api = kubelet.api
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.pod = pod
        self.spec: dict[str, Any] = pod["spec"]
        self.dir = kubelet.root / "pods" / self.uid
        self.init = [Container(c, True) for c in self.spec.get("initContainers") or []]
        self.main = [Container(c, False) for c in self.spec.get("containers") or []]
        self.phase_override: str | None = None
        self.reason: str | None = None
        self.message: str | None = None
        self.conditions: dict[str, dict[str, Any]] = {}
        self.start_time = rfc3339()
        self.stopping = asyncio.Event()
        self.grace = int(self.spec.get("terminationGracePeriodSeconds", 30))
        self.mounts: dict[str, tuple[str, bool]] = {}  # volume name → (host dir, forced read-only)
        self.task: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()
        self.initialized = not self.init
        self.sandbox_ready = False
        for c in self.init:
            c.state = {"waiting": {"reason": "PodInitializing"}}
        for c in self.main:
            c.state = {"waiting": {"reason": "PodInitializing" if self.init else "ContainerCreating"}}

    # -- status ---------------------------------------------------------------------------------------

    def _condition(self, type_: str, ok: bool, reason: str | None = None, message: str | None = None) -> None:
        status = "True" if ok else "False"
        prev = self.conditions.get(type_)
        cond: dict[str, Any] = {"type": type_, "status": status, "lastProbeTime": None,
                                "lastTransitionTime": prev["lastTransitionTime"] if prev and prev["status"] == status
                                else rfc3339()}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        self.conditions[type_] = cond

    @property
    def phase(self) -> str:
        """The pod phase, derived from the containers as the kubelet does."""
        if self.phase_override:
            return self.phase_override
        for c in self.init:
            t = c.terminated
            if t is not None and t["exitCode"] != 0 and not c.is_sidecar:
                return "Failed"
        if not self.initialized:
            return "Pending"
        if self.main and all(c.terminated for c in self.main):
            return "Succeeded" if all(c.terminated and c.terminated["exitCode"] == 0 for c in self.main) else "Failed"
        if any(c.started or c.restart_count for c in self.main):
            return "Running"
        return "Pending"

    @property
    def is_terminal(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def _render_conditions(self) -> None:
        terminal = self.is_terminal
        self._condition("PodReadyToStartContainers", self.sandbox_ready and not terminal)
        pending_init = [c.name for c in self.init if not (c.terminated and c.terminated["exitCode"] == 0)
                        and not (c.is_sidecar and c.started)]
        if self.initialized or not pending_init:
            self._condition("Initialized", True, "PodCompleted" if terminal and self.init else None)
        else:
            self._condition("Initialized", False, "ContainersNotInitialized",
                            f"containers with incomplete status: [{' '.join(pending_init)}]")
        unready = [c.name for c in self.main if "running" not in c.state]
        if terminal:
            self._condition("Ready", False, "PodCompleted")
            self._condition("ContainersReady", False, "PodCompleted")
        elif unready:
            msg = f"containers with unready status: [{' '.join(unready)}]"
            self._condition("Ready", False, "ContainersNotReady", msg)
            self._condition("ContainersReady", False, "ContainersNotReady", msg)
        else:
            self._condition("Ready", True)
            self._condition("ContainersReady", True)

    def sync(self) -> None:
        """Write the pod's status as the kubelet sees it now."""
        self._render_conditions()

        def apply(pod: Obj) -> None:
            status = pod.setdefault("status", {})
            scheduled = [c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"] or [
                # a pod created with spec.nodeName never met the scheduler: the kubelet reports it scheduled
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": rfc3339()}]
            order = ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"]
            status["conditions"] = [self.conditions[t] for t in order] + scheduled
            status["phase"] = self.phase
            status["hostIP"] = POD_IP
            status["hostIPs"] = [{"ip": POD_IP}]
            if self.sandbox_ready:
                status["podIP"] = POD_IP
                status["podIPs"] = [{"ip": POD_IP}]
            status["startTime"] = self.start_time
            if self.init:
                status["initContainerStatuses"] = [c.status() for c in self.init]
            status["containerStatuses"] = [c.status() for c in self.main]
            for k, v in (("reason", self.reason), ("message", self.message)):
                if v:
                    status[k] = v
                else:
                    status.pop(k, None)

        self.api.mutate(PODS, self.namespace, self.name, apply, uid=self.uid)

    def event(self, type_: str, reason: str, message: str, container: Container | None = None) -> None:
        path = None
        if container is not None:
            path = f"spec.{'initContainers' if container.init else 'containers'}{{{container.name}}}"
        self.api.emit_event({"kind": "Pod", "apiVersion": "v1", "metadata": {
            "name": self.name, "namespace": self.namespace, "uid": self.uid}}, type_, reason, message, "kubelet",
            path)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except Exception:
            log.exception("kubesim kubelet: pod %s/%s failed to run", self.namespace, self.name)
            self.phase_override = "Failed"
            self.message = "kubesim: the simulated kubelet failed to run this pod (see the test log)"
            self.sync()
        finally:
            self.finished.set()

    async def _run(self) -> None:
        self.sync()
        deadline = self.spec.get("activeDeadlineSeconds")
        timer = None
        if deadline:
            timer = asyncio.get_running_loop().call_later(float(deadline), self._deadline_exceeded)
        try:
            if not await self._setup_volumes():
                return
            self.sandbox_ready = True
            self.sync()
            sidecars: list[asyncio.Task[int | None]] = []
            for c in self.init:
                if self.stopping.is_set():
                    break
                if c.is_sidecar:
                    started = asyncio.Event()
                    sidecars.append(asyncio.create_task(self._run_with_restarts(c, started)))
                    await _first(started.wait(), self.stopping.wait())
                    continue
                code = await self._run_with_restarts(c)
                if code != 0:
                    self._finish_stopped()
                    await self._stop_all(sidecars)
                    return
            if self.stopping.is_set():
                await self._stop_all(sidecars)
                self._finish_stopped()
                return
            self.initialized = True
            self.sync()
            await asyncio.gather(*(self._run_with_restarts(c) for c in self.main))
            await self._stop_all(sidecars)
            self._finish_stopped()
        finally:
            if timer is not None:
                timer.cancel()

    def _finish_stopped(self) -> None:
        """A pod that ends without all its containers finishing (stopped, deadline) is Failed."""
        if not self.is_terminal:
            self.phase_override = "Failed"
            self.sync()

    async def _stop_all(self, tasks: list[asyncio.Task[int | None]]) -> None:
        for c in self.init:
            if c.is_sidecar:
                await self.kubelet.stop_container(c, self.grace)
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def _deadline_exceeded(self) -> None:
        if self.is_terminal or self.stopping.is_set():
            return
        self.reason = "DeadlineExceeded"
        self.message = "Pod was active on the node longer than the specified deadline"
        self.event("Normal", "DeadlineExceeded", self.message)
        self.kubelet.spawn(self.stop(self.grace))

    async def stop(self, grace: int) -> None:
        """Stop every container: TERM to each main process, KILL the trees after `grace` seconds."""
        first = not self.stopping.is_set()
        self.stopping.set()
        self.grace = min(self.grace, grace)
        running = [c for c in [*self.init, *self.main] if c.proc is not None and c.proc.returncode is None]
        if first:
            for c in running:
                self.event("Normal", "Killing", f"Stopping container {c.name}", c)
        await asyncio.gather(*(self.kubelet.stop_container(c, self.grace) for c in running))
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self._finish_stopped()

    # -- volumes --------------------------------------------------------------------------------------

    async def _setup_volumes(self) -> bool:
        reported: str | None = None
        while True:
            try:
                self.mounts = self.kubelet.materialize_volumes(self)
                return True
            except MountError as e:
                if str(e) != reported:
                    reported = str(e)
                    self.event("Warning", "FailedMount", str(e))
            if not await self.kubelet.wait_for_namespace_change(self.namespace, self.stopping):
                self._finish_stopped()
                return False

    # -- containers -----------------------------------------------------------------------------------

    def will_restart(self, c: Container, code: int) -> bool:
        if self.stopping.is_set():
            return False
        policy = "Always" if c.is_sidecar else str(self.spec.get("restartPolicy", "Always"))
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            return False
        return not (c.init and code == 0 and not c.is_sidecar)

    def restart_delay(self, c: Container) -> float:
        return min(float(self.kubelet.options.restart_backoff) * (2.0 ** (c.restart_count - 1)), 300.0)

    async def _run_with_restarts(self, c: Container, started: asyncio.Event | None = None) -> int | None:
        while True:
            code = await self.kubelet.run_container(self, c, started)
            if code is None or "waiting" not in c.state or c.state["waiting"].get("reason") != "CrashLoopBackOff":
                return code
            self.event("Warning", "BackOff", "Back-off restarting failed container", c)
            if await _first(self.stopping.wait(), asyncio.sleep(self.restart_delay(c))) == 0:
                c.state = {"terminated": c.last_state["terminated"]}
                self.sync()
                return None


async def _first(*aws: Any) -> int:
    """Await the first of several awaitables; returns its index and cancels the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return next(i for i, t in enumerate(tasks) if t in done)
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()


# -- the node -----------------------------------------------------------------------------------------

class Kubelet:
    def __init__(self, api: ApiServer, options: SimOptions, root: Path, port: Callable[[], int]) -> None:
        self.api = api
        self.options = options
        self.root = root
        self.port = port
        self.workers: dict[str, PodWorker] = {}
        self._ns_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        api.store.subscribe(self._on_change)

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- reacting to the API --------------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        if change.rt is PODS:
            self._on_pod(change)
        if change.rt in (CONFIGMAPS, SECRETS, PVCS, SERVICEACCOUNTS):
            for fut in self._ns_waiters.pop(change.namespace, []):
                if not fut.done():
                    fut.set_result(None)
        if change.rt is PVCS and change.type == "DELETED":
            shutil.rmtree(self.root / "pvcs" / change.obj["metadata"]["uid"], ignore_errors=True)

    def _on_pod(self, change: Change) -> None:
        pod = change.obj
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if change.type == "DELETED":
            if worker is not None:
                self.spawn(self._forget(worker, force=True))
            return
        if (pod.get("spec") or {}).get("nodeName") != NODE_NAME:
            return
        deleting = pod["metadata"].get("deletionTimestamp")
        if worker is None:
            if deleting:
                asyncio.get_running_loop().call_soon(
                    self.api.finish_pod_termination, pod["metadata"]["namespace"], pod["metadata"]["name"], uid)
                return
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            worker.task = asyncio.ensure_future(worker.run())
            return
        if deleting and not worker.stopping.is_set():
            grace = int(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
            self.spawn(self._terminate(worker, grace))

    async def _terminate(self, worker: PodWorker, grace: int) -> None:
        await worker.stop(grace)
        self.api.finish_pod_termination(worker.namespace, worker.name, worker.uid)

    async def _forget(self, worker: PodWorker, force: bool) -> None:
        await worker.stop(0 if force else worker.grace)
        for c in [*worker.init, *worker.main]:
            if c.log is not None:
                c.log.close()
        self.workers.pop(worker.uid, None)
        shutil.rmtree(worker.dir, ignore_errors=True)

    async def wait_for_namespace_change(self, namespace: str, stopping: asyncio.Event) -> bool:
        """Wait until a ConfigMap/Secret/PVC/ServiceAccount changes in `namespace`; False when stopping."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ns_waiters.setdefault(namespace, []).append(fut)
        return await _first(stopping.wait(), fut) == 1

    async def shutdown(self) -> None:
        await asyncio.gather(*(self._forget(w, force=True) for w in list(self.workers.values())),
                             return_exceptions=True)
        for t in list(self._tasks):
            t.cancel()

    # -- volumes --------------------------------------------------------------------------------------

    def materialize_volumes(self, w: PodWorker) -> dict[str, tuple[str, bool]]:
        out: dict[str, tuple[str, bool]] = {}
        for v in w.spec.get("volumes") or []:
            name = v["name"]
            target = w.dir / "volumes" / name
            if "emptyDir" in v:
                target.mkdir(parents=True, exist_ok=True)
                out[name] = (str(target), False)
            elif "hostPath" in v:
                out[name] = (self._host_path(v["hostPath"], name), False)
            elif "persistentVolumeClaim" in v:
                claim = v["persistentVolumeClaim"]
                pvc = self.api.store.get(PVCS, w.namespace, claim["claimName"])
                if pvc is None:
                    raise MountError(f'persistentvolumeclaim "{claim["claimName"]}" not found')
                d = self.root / "pvcs" / pvc["metadata"]["uid"]
                d.mkdir(parents=True, exist_ok=True)
                out[name] = (str(d), bool(claim.get("readOnly")))
            elif any(k in v for k in READ_ONLY_SOURCES):
                files = self._volume_files(w, v)
                if target.exists():
                    shutil.rmtree(target)
                target.mkdir(parents=True)
                for rel, (data, mode) in files.items():
                    p = target / rel
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_bytes(data)
                    os.chmod(p, mode)
                out[name] = (str(target), True)
            else:
                kinds = [k for k in v if k != "name"]
                raise MountError(f'MountVolume.SetUp failed for volume "{name}" : volume type {kinds} is not '
                                 f"supported by kubesim")
        return out

    @staticmethod
    def _host_path(src: dict[str, Any], name: str) -> str:
        path, type_ = str(src["path"]), str(src.get("type") or "")
        p = Path(path)
        if type_ in ("", "DirectoryOrCreate") and not p.exists():
            p.mkdir(parents=True, exist_ok=True)
        elif type_ == "FileOrCreate" and not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()
        elif type_ == "Directory" and not p.is_dir():
            raise MountError(f'MountVolume.SetUp failed for volume "{name}" : hostPath type check failed: {path} is '
                             f"not a directory")
        elif type_ == "File" and not p.is_file():
            raise MountError(f'MountVolume.SetUp failed for volume "{name}" : hostPath type check failed: {path} is '
                             f"not a file")
        return path

    def _volume_files(self, w: PodWorker, v: dict[str, Any]) -> dict[str, tuple[bytes, int]]:
        name = v["name"]
        if "configMap" in v:
            return self._keyed_files(w, "configMap", v["configMap"], name, int(v["configMap"].get("defaultMode", 420)))
        if "secret" in v:
            return self._keyed_files(w, "secret", v["secret"], name, int(v["secret"].get("defaultMode", 420)))
        if "downwardAPI" in v:
            mode = int(v["downwardAPI"].get("defaultMode", 420))
            return self._downward_files(w, v["downwardAPI"].get("items") or [], mode)
        files: dict[str, tuple[bytes, int]] = {}
        proj = v["projected"]
        mode = int(proj.get("defaultMode", 420))
        for src in proj.get("sources") or []:
            if "configMap" in src:
                files.update(self._keyed_files(w, "configMap", src["configMap"], name, mode))
            elif "secret" in src:
                files.update(self._keyed_files(w, "secret", src["secret"], name, mode))
            elif "downwardAPI" in src:
                files.update(self._downward_files(w, src["downwardAPI"].get("items") or [], mode))
            elif "serviceAccountToken" in src:
                sat = src["serviceAccountToken"]
                body = {"spec": {"audiences": [sat["audience"]] if sat.get("audience") else None,
                                 "expirationSeconds": int(sat.get("expirationSeconds", 3607)),
                                 "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": w.name,
                                                    "uid": w.uid}}}
                try:
                    tr = self.api.token_request(w.namespace, str(w.spec.get("serviceAccountName", "default")), body)
                except ApiError as e:
                    raise MountError(f'MountVolume.SetUp failed for volume "{name}" : {e.message}') from e
                files[str(sat.get("path", "token"))] = (tr["status"]["token"].encode(), mode)
        return files

    def _keyed_files(self, w: PodWorker, kind: str, src: dict[str, Any], vol: str,
                     default_mode: int) -> dict[str, tuple[bytes, int]]:
        obj_name = src.get("name") if kind == "configMap" else src.get("secretName", src.get("name"))
        rt = CONFIGMAPS if kind == "configMap" else SECRETS
        obj = self.api.store.get(rt, w.namespace, str(obj_name))
        optional = bool(src.get("optional"))
        label = "configmap" if kind == "configMap" else "secret"
        if obj is None:
            if optional:
                return {}
            raise MountError(f'MountVolume.SetUp failed for volume "{vol}" : {label} "{obj_name}" not found')
        data: dict[str, bytes] = {}
        if kind == "configMap":
            data.update({k: str(val).encode() for k, val in (obj.get("data") or {}).items()})
            data.update({k: base64.b64decode(val) for k, val in (obj.get("binaryData") or {}).items()})
        else:
            data.update({k: base64.b64decode(val) for k, val in (obj.get("data") or {}).items()})
        items = src.get("items")
        if not items:
            return {k: (val, default_mode) for k, val in data.items()}
        files: dict[str, tuple[bytes, int]] = {}
        for it in items:
            key = it["key"]
            if key not in data:
                if optional:
                    continue
                raise MountError(f'MountVolume.SetUp failed for volume "{vol}" : {label} references non-existent '
                                 f"{'config' if kind == 'configMap' else 'secret'} key: {key}")
            files[str(it.get("path", key))] = (data[key], int(it.get("mode", default_mode)))
        return files

    def _downward_files(self, w: PodWorker, items: list[dict[str, Any]], mode: int) -> dict[str, tuple[bytes, int]]:
        files: dict[str, tuple[bytes, int]] = {}
        pod = self.api.store.get(PODS, w.namespace, w.name) or w.pod
        for it in items:
            ref = it.get("fieldRef")
            if ref:
                path = str(ref["fieldPath"])
                if path in ("metadata.labels", "metadata.annotations"):
                    section = pod["metadata"].get(path.split(".")[1]) or {}
                    value = "\n".join(f'{k}="{v}"' for k, v in sorted(section.items()))
                else:
                    value = field_ref(pod, path)
                files[str(it["path"])] = (value.encode(), int(it.get("mode", mode)))
        return files

    # -- environment ----------------------------------------------------------------------------------

    def container_env(self, w: PodWorker, c: Container) -> dict[str, str]:
        env: dict[str, str] = {
            "PATH": pod_path(),
            "HOSTNAME": w.name[:63],
            "HOME": "/root" if os.geteuid() == 0 else os.environ.get("HOME", "/"),
        }
        port = str(self.port())  # the `kubernetes` service variables are injected whatever enableServiceLinks says
        if port:
            env.update({"KUBERNETES_SERVICE_HOST": POD_IP, "KUBERNETES_SERVICE_PORT": port,
                        "KUBERNETES_SERVICE_PORT_HTTPS": port, "KUBERNETES_PORT": f"tcp://{POD_IP}:{port}",
                        "KUBERNETES_PORT_443_TCP": f"tcp://{POD_IP}:{port}", "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
                        "KUBERNETES_PORT_443_TCP_PORT": port, "KUBERNETES_PORT_443_TCP_ADDR": POD_IP})
        for ef in c.spec.get("envFrom") or []:
            prefix = str(ef.get("prefix", ""))
            if "configMapRef" in ef:
                ref = ef["configMapRef"]
                cm = self.api.store.get(CONFIGMAPS, w.namespace, str(ref.get("name")))
                if cm is None:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f'configmap "{ref.get("name")}" not found')
                for k, v in (cm.get("data") or {}).items():
                    env[prefix + k] = str(v)
            elif "secretRef" in ef:
                ref = ef["secretRef"]
                sec = self.api.store.get(SECRETS, w.namespace, str(ref.get("name")))
                if sec is None:
                    if ref.get("optional"):
                        continue
                    raise ConfigError(f'secret "{ref.get("name")}" not found')
                for k, v in (sec.get("data") or {}).items():
                    env[prefix + k] = base64.b64decode(v).decode(errors="replace")
        pod = self.api.store.get(PODS, w.namespace, w.name) or w.pod
        for e in c.spec.get("env") or []:
            name = str(e["name"])
            if "valueFrom" not in e:
                env[name] = expand(str(e.get("value", "")), env)
                continue
            vf = e["valueFrom"]
            value = self._value_from(w, c, pod, vf)
            if value is not None:
                env[name] = value
        return env

    def _value_from(self, w: PodWorker, c: Container, pod: Obj, vf: dict[str, Any]) -> str | None:
        if "fieldRef" in vf:
            return field_ref(pod, str(vf["fieldRef"]["fieldPath"]))
        if "resourceFieldRef" in vf:
            return resource_field_ref(c.spec, vf["resourceFieldRef"])
        for key, rt, label, what in (("configMapKeyRef", CONFIGMAPS, "configmap", "ConfigMap"),
                                     ("secretKeyRef", SECRETS, "secret", "Secret")):
            if key not in vf:
                continue
            ref = vf[key]
            obj = self.api.store.get(rt, w.namespace, str(ref.get("name")))
            if obj is None:
                if ref.get("optional"):
                    return None
                raise ConfigError(f'{label} "{ref.get("name")}" not found')
            data = obj.get("data") or {}
            if ref["key"] not in data:
                if ref.get("optional"):
                    return None
                raise ConfigError(f"couldn't find key {ref['key']} in {what} {w.namespace}/{ref.get('name')}")
            raw = data[ref["key"]]
            return str(raw) if rt is CONFIGMAPS else base64.b64decode(raw).decode(errors="replace")
        return None

    # -- running a container --------------------------------------------------------------------------

    def is_unpullable(self, image: str) -> bool:
        return any(image == p or fnmatch.fnmatchcase(image, p) for p in self.options.unpullable_images)

    def _mounts_for(self, w: PodWorker, c: Container) -> list[Mount]:
        mounts: list[Mount] = []
        for m in c.spec.get("volumeMounts") or []:
            source, forced_ro = w.mounts[m["name"]]
            if m.get("subPath"):
                sub = Path(source) / str(m["subPath"])
                if not sub.exists():
                    sub.mkdir(parents=True, exist_ok=True)
                source = str(sub)
            mounts.append(Mount(str(m["mountPath"]), source, forced_ro or bool(m.get("readOnly"))))
        return mounts

    def _argv(self, c: Container, env: Mapping[str, str]) -> list[str]:
        image = str(c.spec.get("image", ""))
        config = self.options.images.get(image) or self.options.images.get(image.split(":")[0]) or {}
        command = c.spec.get("command")
        args = c.spec.get("args")
        if command is None:
            command = list(config.get("entrypoint") or [])
            if args is None:
                args = list(config.get("cmd") or [])
        argv = [expand(str(a), env) for a in [*(command or []), *(args or [])]]
        return argv

    async def run_container(self, w: PodWorker, c: Container, started: asyncio.Event | None) -> int | None:
        """Run one container instance to completion; None when the pod stopped before it ran."""
        image = str(c.spec.get("image", ""))
        if self.is_unpullable(image):
            return await self._pull_fails(w, c)
        env: dict[str, str] = {}
        reported: str | None = None
        while True:
            try:
                env = self.container_env(w, c)
                break
            except ConfigError as e:
                c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
                w.sync()
                if str(e) != reported:
                    reported = str(e)
                    w.event("Warning", "Failed", f"Error: {e}", c)
                if not await self.wait_for_namespace_change(w.namespace, w.stopping):
                    return None
        delay = self.options.container_start_delay  # the latency of a real runtime creating the container
        if delay > 0 and await _first(w.stopping.wait(), asyncio.sleep(delay)) == 0:
            return None
        if w.stopping.is_set():
            return None
        w.event("Normal", "Pulled", f'Container image "{image}" already present on machine', c)
        argv = self._argv(c, env)
        mounts = self._mounts_for(w, c)
        use_bwrap = self.options.bwrap
        workdir = c.spec.get("workingDir")
        c.container_id = f"containerd://{secrets.token_hex(32)}"
        problem = self._start_problem(argv, env, mounts, use_bwrap, str(workdir or "/"))
        if problem is not None:
            stamp = rfc3339()
            c.state = {"terminated": {"exitCode": 128, "reason": "StartError", "message": problem,
                                      "startedAt": "1970-01-01T00:00:00Z", "finishedAt": stamp,
                                      "containerID": c.container_id}}
            w.sync()
            w.event("Warning", "Failed", f"Error: {problem}", c)
            if started is not None:
                started.set()
            return 128
        scratch = w.dir / "containers" / f"{c.name}-{c.restart_count}"
        scratch.mkdir(parents=True, exist_ok=True)
        term_log = scratch / "termination-log"
        term_log.touch()
        c.log = LogBuffer(w.dir / "logs" / f"{c.name}-{c.restart_count}.log")
        info_r, info_w = os.pipe()
        try:
            if use_bwrap:
                cmd = [*bwrap_args(mounts, hostname=w.name, workdir=str(workdir) if workdir else None,
                                   info_fd=info_w, termination_log=str(term_log), scratch=scratch), *argv]
                cwd = None
                pass_fds: tuple[int, ...] = (info_w,)
            else:
                cmd = argv
                env = {**env, "KUBESIM_MOUNTS": json.dumps({m.dest: m.source for m in mounts}),
                       "KUBESIM_TERMINATION_LOG": str(term_log)}
                cwd = host_path_for(str(workdir), mounts) if workdir else None
                if cwd is not None:
                    Path(cwd).mkdir(parents=True, exist_ok=True)
                pass_fds = ()
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True, pass_fds=pass_fds)
        finally:
            os.close(info_w)
        c.proc = proc
        c.main_pid = await _read_child_pid(info_r) if use_bwrap else proc.pid
        os.close(info_r)
        if c.main_pid is None:
            c.main_pid = proc.pid
        started_at = rfc3339()
        c.state = {"running": {"startedAt": started_at}}
        c.started = True
        w.sync()
        w.event("Normal", "Created", f"Created container {c.name}", c)
        w.event("Normal", "Started", f"Started container {c.name}", c)
        if started is not None:
            started.set()
        assert proc.stdout is not None
        reader = asyncio.ensure_future(_pump(proc.stdout, c.log))
        returncode = await proc.wait()
        _killpg(proc.pid, signal.SIGKILL)  # the container's remaining processes die with it
        await wait_group_gone(proc.pid)
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        c.log.close()
        code = returncode if returncode >= 0 else 128 - returncode
        if use_bwrap and code == 1 and c.log.records and c.log.records[-1][1].startswith(b"bwrap: "):
            code = 128
        message = term_log.read_text(errors="replace")[:4096] if term_log.exists() else ""
        if not message and code != 0 and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            tail = b"".join(r[1] for r in c.log.records[-80:])[-2048:]
            message = tail.decode(errors="replace")
        terminated: dict[str, Any] = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                      "startedAt": started_at, "finishedAt": rfc3339(),
                                      "containerID": c.container_id}
        if message:
            terminated["message"] = message
        c.proc = None
        if w.will_restart(c, code):
            c.restart_count += 1
            c.last_state = {"terminated": terminated}
            delay = w.restart_delay(c)
            c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": (
                f"back-off {int(delay)}s restarting failed container={c.name} pod={w.name}_{w.namespace}"
                f"({w.uid})")}}
        else:
            c.state = {"terminated": terminated}
        w.sync()
        return code

    def _start_problem(self, argv: list[str], env: Mapping[str, str], mounts: list[Mount],
                       use_bwrap: bool, workdir: str) -> str | None:
        if not argv:
            return ("failed to create containerd container: error unpacking image: no command specified")
        exe = argv[0]
        oci = "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc " \
              "create failed: unable to start container process: "
        resolve = (lambda p: resolve_in_container(p, mounts)) if use_bwrap else \
            (lambda p: p if os.path.exists(p) else None)
        if "/" in exe:
            if resolve(os.path.join(workdir, exe)) is None:
                return f'{oci}exec: "{exe}": stat {exe}: no such file or directory: unknown'
            return None
        for d in env.get("PATH", DEFAULT_PATH).split(":"):
            found = resolve(os.path.join(d, exe)) if d else None
            if found is not None and os.access(found, os.X_OK):
                return None
        return f'{oci}exec: "{exe}": executable file not found in $PATH: unknown'

    async def _pull_fails(self, w: PodWorker, c: Container) -> int | None:
        image = str(c.spec.get("image", ""))
        ref = image if "/" in image else f"docker.io/library/{image}"
        msg = (f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}": failed to resolve '
               f"reference \"{ref}\": {ref}: not found")
        w.event("Normal", "Pulling", f'Pulling image "{image}"', c)
        c.state = {"waiting": {"reason": "ErrImagePull", "message": msg}}
        w.sync()
        w.event("Warning", "Failed", f'Failed to pull image "{image}": {msg}', c)
        w.event("Warning", "Failed", "Error: ErrImagePull", c)
        if await _first(w.stopping.wait(), asyncio.sleep(self.options.image_pull_backoff)) == 0:
            return None
        c.state = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}}
        w.sync()
        w.event("Normal", "BackOff", f'Back-off pulling image "{image}"', c)
        w.event("Warning", "Failed", "Error: ImagePullBackOff", c)
        await w.stopping.wait()
        return None

    async def stop_container(self, c: Container, grace: int) -> None:
        proc = c.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(c.main_pid or proc.pid, signal.SIGTERM)
        if grace > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=grace)
        if proc.returncode is None:
            _killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        with contextlib.suppress(asyncio.CancelledError):
            await proc.wait()
        _killpg(proc.pid, signal.SIGKILL)
        await wait_group_gone(proc.pid)

    # -- logs -----------------------------------------------------------------------------------------

    async def log_response(self, namespace: str, name: str, q: QueryParams) -> Response:
        pod = self.api.get(PODS, namespace, name)
        spec = pod.get("spec") or {}
        inits = [c["name"] for c in spec.get("initContainers") or []]
        mains = [c["name"] for c in spec.get("containers") or []]
        container = q.get("container")
        if not container:
            if len(mains) != 1:
                extra = f" or one of the init containers: [{' '.join(inits)}]" if inits else ""
                raise ApiError.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                           f"[{' '.join(mains)}]{extra}")
            container = mains[0]
        if container not in inits and container not in mains:
            raise ApiError.bad_request(f"container {container} is not valid for pod {name}")
        if q.get("previous", "").lower() == "true":
            raise ApiError.bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
        if not spec.get("nodeName"):
            raise ApiError.bad_request(f"pod {name} does not have a host assigned")
        status = pod.get("status") or {}
        cstatus = next((s for s in [*(status.get("initContainerStatuses") or []),
                                    *(status.get("containerStatuses") or [])] if s.get("name") == container), None)
        worker = self.workers.get(pod["metadata"]["uid"])
        c = None
        if worker is not None:
            c = next((x for x in [*worker.init, *worker.main] if x.name == container), None)
        waiting = (cstatus or {}).get("state", {}).get("waiting")
        if c is None or c.log is None or (waiting and not c.log.records and not c.log.closed):
            reason = (waiting or {}).get("reason", "ContainerCreating")
            why = {"ErrImagePull": "image can't be pulled",
                   "ImagePullBackOff": "trying and failing to pull image"}.get(reason, reason)
            raise ApiError.bad_request(f'container "{container}" in pod "{name}" is waiting to start: {why}')
        log = c.log
        timestamps = q.get("timestamps", "").lower() == "true"
        tail = _opt_int(q.get("tailLines"))
        limit = _opt_int(q.get("limitBytes"))
        since = _opt_int(q.get("sinceSeconds"))
        follow = q.get("follow", "").lower() == "true"

        def render(records: list[tuple[dt.datetime, bytes]]) -> bytes:
            if since is not None:
                cutoff = now() - dt.timedelta(seconds=since)
                records = [r for r in records if r[0] >= cutoff]
            if timestamps:
                return b"".join(rfc3339_nano(t).encode() + b" " + d for t, d in records)
            return b"".join(d for _, d in records)

        start = len(log.records) - tail if tail is not None and tail < len(log.records) else 0
        if not follow:
            body = render(log.records[start:])
            return Response(body[:limit] if limit is not None else body, media_type="text/plain")

        async def chunks() -> AsyncIterator[bytes]:
            sent = start
            budget = limit
            while True:
                changed = log.next_change()  # taken before reading, so no append can slip between
                batch = log.records[sent:]
                sent += len(batch)
                if batch:
                    data = render(batch)
                    if budget is not None:
                        data = data[:budget]
                        budget -= len(data)
                    if data:
                        yield data
                    if budget is not None and budget <= 0:
                        return
                if log.closed and sent >= len(log.records):
                    return
                await changed.wait()

        return StreamingResponse(chunks(), media_type="text/plain")


def _opt_int(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(str(value))
    except ValueError as e:
        raise ApiError.bad_request(f"invalid integer: {value}") from e


async def _pump(stream: asyncio.StreamReader, log: LogBuffer) -> None:
    """Copy a process's output into its log, one line at a time (a final partial line at EOF)."""
    pending = b""
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            log.append(line + b"\n")
        if len(pending) >= 16384:  # containerd splits very long lines the same way
            log.append(pending)
            pending = b""
    if pending:
        log.append(pending)


async def _read_child_pid(fd: int) -> int | None:
    """Read bubblewrap's --info-fd JSON (it names the sandbox's PID 1 on the host)."""
    loop = asyncio.get_running_loop()
    data = b""
    while True:
        chunk = await loop.run_in_executor(None, os.read, fd, 4096)
        if not chunk:
            break
        data += chunk
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError):
            continue
    return None


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group: a container's whole tree."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != b"Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


async def wait_group_gone(pgid: int, timeout: float = 5.0) -> None:
    """Wait (on pidfds, not by sleeping) until every process of the group has exited."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        pids = _group_members(pgid)
        remaining = deadline - loop.time()
        if not pids or remaining <= 0:
            return
        watched: list[tuple[int, asyncio.Future[None]]] = []
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue
            fut: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _resolve, fut)
            watched.append((fd, fut))
        try:
            if watched:
                await asyncio.wait([f for _, f in watched], timeout=remaining)
        finally:
            for fd, _ in watched:
                loop.remove_reader(fd)
                os.close(fd)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


_VAR = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined variables are substituted, `$$` escapes, others stay."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR.sub(sub, text)


def field_ref(pod: Obj, path: str) -> str:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    m = re.match(r"^metadata\.(labels|annotations)\['([^']+)'\]$", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
              "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
              "spec.serviceAccountName": spec.get("serviceAccountName"), "status.hostIP": POD_IP,
              "status.hostIPs": POD_IP, "status.podIP": status.get("podIP", POD_IP),
              "status.podIPs": POD_IP}
    return str(simple.get(path) or "")


def resource_field_ref(spec: dict[str, Any], ref: dict[str, Any]) -> str:
    from decimal import ROUND_CEILING, Decimal

    from ._validation import parse_quantity

    resource = str(ref.get("resource", ""))
    section, _, res = resource.partition(".")
    value = ((spec.get("resources") or {}).get(section) or {}).get(res)
    if value is None:
        # unset limits report the node's allocatable capacity
        value = str(os.cpu_count() or 1) if res == "cpu" else \
            str(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    divisor = parse_quantity(ref.get("divisor", "1") or "1")
    if divisor == 0:
        divisor = Decimal(1)
    return str(int((parse_quantity(value) / divisor).to_integral_value(rounding=ROUND_CEILING)))
