"""`KubeSim`: the whole simulated cluster (API server, controllers, one node) on a background thread.

The simulator owns an event loop in its own thread; the HTTP server listens on 127.0.0.1 (a free
port by default). Use it as a context manager (sync or async) or call `start()`/`stop()`.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import logging
import os
import platform
import secrets
import shutil
import socket
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import uvicorn
import yaml

from . import _admission
from ._apiserver import NAMESPACES, NODES, ApiServer
from ._clock import rfc3339
from ._controllers import Controllers
from ._http import ApiCall, Frontend
from ._kubelet import NODE_NAME, POD_IP, Kubelet
from ._rbac import builtin_objects
from ._registry import RESOURCES, ResourceType
from ._sandbox import bwrap_usable
from ._store import Obj, Store
from ._tls import make_certificates

T = TypeVar("T")
log = logging.getLogger("kubesim")


@dataclass
class SimOptions:
    bwrap: bool = True
    watch_history: int = 10_000
    unpullable_images: tuple[str, ...] = ("*:does-not-exist",)
    node_labels: dict[str, str] = field(default_factory=dict)
    images: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    job_backoff_base: float = 10.0
    restart_backoff: float = 10.0
    image_pull_backoff: float = 1.0
    bookmark_interval: float = 60.0
    schedule_delay: float = 0.0
    container_start_delay: float = 0.0


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    return sock


def _host_memory() -> str:
    """The node's memory as the host reports it (MemTotal), in Ki like a kubelet."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1])}Ki"
    except OSError:
        pass
    return "16Gi"


def resource_type(plural: str) -> ResourceType:
    for rt in RESOURCES:
        if plural in (rt.plural, rt.key):
            return rt
    raise KeyError(plural)


class KubeSim:
    """A Kubernetes stand-in: real REST semantics, pods run as local processes.

    Options:
      bwrap: run containers under bubblewrap (default: when it works on this machine).
      watch_history: how many events are kept for watches to resume from (older → 410 Gone).
      unpullable_images: image names or fnmatch patterns whose pull fails (ErrImagePull).
      node_labels: extra labels of the single node (for nodeSelector tests).
      images: image → {"entrypoint": [...], "cmd": [...]} used when a container has no `command`.
      job_backoff_base: the Job controller's retry back-off base in seconds (real clusters: 10).
      restart_backoff: the kubelet's container restart back-off base in seconds (real: 10).
      image_pull_backoff: seconds between ErrImagePull and ImagePullBackOff.
      bookmark_interval: seconds between BOOKMARK events on watches that allow them (real: ~60).
      schedule_delay / container_start_delay: seconds before a pod is bound / before each container
        starts (default 0: instant); set them to let real-cluster latency expose races.
      sandbox_root: where pod sandboxes live (default: a temporary directory removed on stop).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, bwrap: bool | None = None,
                 watch_history: int = 10_000, unpullable_images: Iterable[str] = ("*:does-not-exist",),
                 node_labels: Mapping[str, str] | None = None,
                 images: Mapping[str, Mapping[str, list[str]]] | None = None,
                 job_backoff_base: float = 10.0, restart_backoff: float = 10.0, image_pull_backoff: float = 1.0,
                 bookmark_interval: float = 60.0, sandbox_root: str | os.PathLike[str] | None = None,
                 token: str | None = None, schedule_delay: float = 0.0, container_start_delay: float = 0.0) -> None:
        self.host = host
        self._requested_port = port
        self.options = SimOptions(
            bwrap=bwrap_usable() if bwrap is None else bwrap, watch_history=watch_history,
            unpullable_images=tuple(unpullable_images), node_labels=dict(node_labels or {}),
            images={k: dict(v) for k, v in (images or {}).items()}, job_backoff_base=job_backoff_base,
            restart_backoff=restart_backoff, image_pull_backoff=image_pull_backoff,
            bookmark_interval=bookmark_interval, schedule_delay=schedule_delay,
            container_start_delay=container_start_delay)
        self.token = token or secrets.token_urlsafe(24)
        self._own_root = sandbox_root is None
        self.root = Path(sandbox_root) if sandbox_root else Path(tempfile.mkdtemp(prefix="kubesim-"))
        self.store = Store(watch_history)
        self.api = ApiServer(self.store)
        self.port = 0
        self.tls_port = 0
        self.ca_pem = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stop_requested: asyncio.Event | None = None
        self.kubelet: Kubelet
        self.controllers: Controllers
        self.frontend: Frontend

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> KubeSim:
        if self._thread is not None:
            return self
        sock = _listen(self.host, self._requested_port)
        tls_sock = _listen(self.host, 0)
        self.port = sock.getsockname()[1]
        self.tls_port = tls_sock.getsockname()[1]
        self._thread = threading.Thread(target=self._thread_main, args=(sock, tls_sock), name="kubesim",
                                        daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise RuntimeError("kubesim failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        loop, stop = self._loop, self._stop_requested
        if stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=30)
        self._thread = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> KubeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> KubeSim:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await asyncio.to_thread(self.stop)

    def _thread_main(self, sock: socket.socket, tls_sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._main(sock, tls_sock))
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self, sock: socket.socket, tls_sock: socket.socket) -> None:
        self._stop_requested = asyncio.Event()
        try:
            _admission.install(self.api)
            self.store.subscribe(self.api.on_change)
            self.controllers = Controllers(self.api, self.options)
            self.kubelet = Kubelet(self.api, self.options, self.root, lambda: self.tls_port)
            self.frontend = Frontend(self)
            certs = make_certificates(self.root / "pki")
            self.ca_pem = self.api.ca_pem = certs.ca_pem
            self._bootstrap()
            app = self.frontend.app()
            common: dict[str, Any] = {"lifespan": "off", "log_level": "warning", "access_log": False, "ws": "none"}
            servers = [uvicorn.Server(uvicorn.Config(app, **common)),
                       uvicorn.Server(uvicorn.Config(app, ssl_certfile=str(certs.cert_file),
                                                     ssl_keyfile=str(certs.key_file), **common))]
            controllers = asyncio.ensure_future(self.controllers.run())
            serving = [asyncio.ensure_future(servers[0].serve(sockets=[sock])),
                       asyncio.ensure_future(servers[1].serve(sockets=[tls_sock]))]
        except BaseException as e:
            self._startup_error = e
            self._ready.set()
            raise
        self._ready.set()
        await self._stop_requested.wait()
        self.frontend.closing.set()
        await self.kubelet.shutdown()
        # a test double need not drain politely: stop serving at once (uvicorn's own shutdown ticks at 0.1 s)
        for task in serving:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for server in servers:
            for listener in server.servers:
                listener.close()
            for connection in list(server.server_state.connections):
                connection.shutdown()
            for task in list(server.server_state.tasks):
                task.cancel()
        controllers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await controllers
        sock.close()
        tls_sock.close()

    def _bootstrap(self) -> None:
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.api.create(NAMESPACES, "", {"metadata": {"name": ns}})
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        cpus = str(os.cpu_count() or 1)
        memory = _host_memory()
        labels = {"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
                  "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch, **self.options.node_labels}
        node: Obj = {"metadata": {"name": NODE_NAME, "labels": labels}, "spec": {}}
        self.api.create(NODES, "", node)

        def ready(o: Obj) -> None:
            stamp = rfc3339()
            o["status"] = {
                "capacity": {"cpu": cpus, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"},
                "allocatable": {"cpu": cpus, "memory": memory, "pods": "110", "ephemeral-storage": "100Gi"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "kubelet is posting ready status", "lastHeartbeatTime": stamp,
                                "lastTransitionTime": stamp}],
                "addresses": [{"type": "InternalIP", "address": POD_IP}, {"type": "Hostname", "address": NODE_NAME}],
                "nodeInfo": {"architecture": arch, "operatingSystem": "linux", "kubeletVersion": "v1.31.0-kubesim",
                             "containerRuntimeVersion": "kubesim://bwrap" if self.options.bwrap
                             else "kubesim://host", "kernelVersion": platform.release(), "osImage": "kubesim",
                             "machineID": "", "systemUUID": "", "bootID": "", "kubeProxyVersion": ""},
            }

        self.api.mutate(NODES, "", NODE_NAME, ready)
        for rt, obj in builtin_objects():
            self.api.create(rt, "", obj)

    # -- access ---------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def tls_url(self) -> str:
        """The same API over HTTPS (certificate signed by `ca_pem`): what pods reach in-cluster."""
        return f"https://{self.host}:{self.tls_port}"

    def kubeconfig(self, path: str | os.PathLike[str], *, token: str | None = None,
                   namespace: str = "default", tls: bool = False) -> Path:
        """Write a kubeconfig for this cluster (admin token unless `token` is given); returns the path.

        Plain HTTP by default (clients skip loading CA bundles: fast); `tls=True` points at the HTTPS
        listener and embeds the cluster CA, as a kubeconfig handed out by a real cluster would.
        """
        user = "kubesim-admin" if token is None else "kubesim-token"
        cluster: dict[str, Any] = {"server": self.url, "insecure-skip-tls-verify": True}
        if tls:
            cluster = {"server": self.tls_url,
                       "certificate-authority-data": base64.b64encode(self.ca_pem.encode()).decode()}
        doc = {"apiVersion": "v1", "kind": "Config", "preferences": {},
               # plain HTTP: nothing to verify, and skipping it spares clients loading the CA bundle
               "clusters": [{"name": "kubesim", "cluster": cluster}],
               "users": [{"name": user, "user": {"token": token or self.token}}],
               "contexts": [{"name": "kubesim", "context": {"cluster": "kubesim", "user": user,
                                                           "namespace": namespace}}],
               "current-context": "kubesim"}
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(yaml.safe_dump(doc, sort_keys=False))
        p.chmod(0o600)
        return p

    @property
    def calls(self) -> Counter[tuple[str, str]]:
        """API calls so far, counted by (verb, resource): ("create", "jobs"), ("get", "pods/log"), …"""
        return self.frontend.log.counter()

    def calls_in(self, namespace: str) -> Counter[tuple[str, str]]:
        """API calls made inside one namespace (e.g. one execution's), by (verb, resource)."""
        return Counter((c.verb, c.resource) for c in self.frontend.log.calls if c.namespace == namespace)

    @property
    def call_log(self) -> builtins.list[ApiCall]:
        return list(self.frontend.log.calls)

    def advance_token_clock(self, seconds: float) -> None:
        """Age every issued token by `seconds` (only token expiry looks at this clock)."""
        self.api.token_clock_offset += seconds

    def reset_calls(self) -> None:
        self.frontend.log.calls.clear()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the simulator's loop (from another thread) and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 30) -> T:
        """Run a function on the simulator's loop, e.g. to write through `sim.api` from a test."""
        async def wrapper() -> T:
            return fn()

        return self.run(wrapper(), timeout)

    def wait_until(self, predicate: Callable[[Store], bool], timeout: float = 10) -> bool:
        """Block until `predicate(store)` holds (re-checked after every write) or the timeout passes."""
        return self.store.wait_until(predicate, timeout)

    async def wait_for(self, predicate: Callable[[Store], bool], timeout: float = 10) -> bool:
        return await asyncio.to_thread(self.store.wait_until, predicate, timeout)

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        """An object straight from the store (`resource` is a plural, e.g. "pods", "jobs", "rolebindings")."""
        return self.store.get(resource_type(resource), namespace, name)

    def list(self, resource: str, namespace: str | None = None) -> builtins.list[Obj]:
        return self.store.list(resource_type(resource), namespace)

    def bind_pod(self, namespace: str, name: str, body: Any) -> Obj:
        target = ((body or {}).get("target") or {}).get("name", "")
        self.controllers.bind(namespace, name, str(target))
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def processes(self) -> builtins.list[int]:
        """Host PIDs of the containers' main processes still running (for kill assertions)."""
        pids: builtins.list[int] = []
        for w in list(self.kubelet.workers.values()):
            for c in [*w.init, *w.main]:
                if c.proc is not None and c.proc.returncode is None:
                    pids.append(c.proc.pid)
        return pids
