"""The local runtime: runs a Plan's containers one after another as local process groups, each in a
private mount namespace built from the execution's workspace (``/data``, ``/tmp``, ``/testkube``,
``/.shoal``, pod volumes), streaming their output through the marker parser into ``events.jsonl``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from json.decoder import scanstring as _scan_str  # type: ignore[attr-defined]
from json.encoder import encode_basestring as _encode_str
from pathlib import Path
from typing import Any

from shoal.execution._initgen import init_files
from shoal.execution._logparse import MarkerParser
from shoal.execution._runtime import ExecutionError, ExecutionHandle, ExecutionJob, ExecutionOutcome, Runtime
from shoal.execution._sandbox import (
    Isolation,
    Mount,
    Sandbox,
    SandboxChoice,
    SandboxSpec,
    choose_sandbox,
)
from shoal.workflow._plan import Container, Plan
from shoal.workflow._status import INIT_REF, ExecutionEvent, ExecutionState, format_timestamp

# ------------------------------------------------------------------------------------------ workspace


def shoal_home() -> Path:
    """``$SHOAL_HOME``, default ``~/.shoal``."""
    env = os.environ.get("SHOAL_HOME")
    return Path(env).expanduser() if env else Path.home() / ".shoal"


@dataclass(frozen=True, slots=True)
class Workspace:
    """Paths of one execution's workspace (nothing is created until ``create``)."""

    root: Path

    @classmethod
    def for_execution(cls, execution_id: str, home: Path | None = None) -> Workspace:
        return cls((home or shoal_home()) / "executions" / execution_id)

    @classmethod
    def create(cls, root: Path) -> Workspace:
        ws = cls(root)
        ws.ensure()
        return ws

    def ensure(self) -> None:
        for d in (self.shoal, self.data, self.tmp, self.testkube / "outputs", self.volumes, self.roots):
            d.mkdir(parents=True, exist_ok=True)
        self.tmp.chmod(0o1777)

    # ---------------------------------------------------------------- what steps see
    @property
    def shoal(self) -> Path:
        return self.root / "shoal"  # /.shoal

    @property
    def data(self) -> Path:
        return self.root / "data"  # /data

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"  # /tmp

    @property
    def testkube(self) -> Path:
        return self.root / "testkube"  # /testkube

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    def volume(self, name: str) -> Path:
        return self.volumes / name

    @property
    def roots(self) -> Path:
        """New top-level directories (``/config`` for a content file at /config/x.json)."""
        return self.root / "roots"

    @property
    def scratch(self) -> Path:
        """Empty directory the unshare sandbox mounts its new root on."""
        return self.root / "sandbox-root"

    @property
    def children(self) -> Path:
        """Workspaces of sub-executions (parallel workers, services) started by the toolkit."""
        return self.root / "children"

    # ---------------------------------------------------------------- bookkeeping
    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def job_file(self) -> Path:
        return self.root / "job.json"

    @property
    def plan_file(self) -> Path:
        return self.root / "plan.json"

    @property
    def runner_file(self) -> Path:
        return self.root / "runner.json"

    @property
    def execution_file(self) -> Path:
        return self.root / "execution.json"

    @property
    def mask_file(self) -> Path:
        return self.root / "mask"

    def read_json(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        """Atomic replace, so a reader (or a runner that re-attaches) never sees half a file."""
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)


# ------------------------------------------------------------------------------------------ processes


def _proc_children() -> dict[int, list[int]]:
    """ppid -> pids, from /proc (empty where there is no /proc)."""
    out: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields start after the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        out.setdefault(int(fields[1]), []).append(int(name))
    return out


def process_tree(pid: int) -> list[int]:
    """``pid``'s descendants, parents first (``pid`` itself excluded)."""
    children = _proc_children()
    order: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        p = stack.pop(0)
        order.append(p)
        stack.extend(children.get(p, []))
    return order


def process_start_time(pid: int) -> int | None:
    """Kernel start time of ``pid`` (clock ticks since boot), to tell a live pid from a reused one."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return int(stat[stat.rfind(b")") + 2 :].split()[19])


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def signal_tree(pid: int, sig: int, *, include_root: bool, spare: Sequence[str] = ()) -> None:
    """Send ``sig`` to every descendant of ``pid`` (even those in other process groups) and, with
    ``include_root``, to ``pid``'s whole process group. Processes named in ``spare`` (the sandbox
    wrappers, which would SIGKILL their child if they died first) are left alone."""
    targets = process_tree(pid)
    if include_root:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        targets.insert(0, pid)
    for p in targets:
        if spare and _comm(p) in spare:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


def _alive(pid: Any, start: Any) -> bool:
    """Whether ``pid`` still runs and is the same process (same start time) as recorded."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if not os.path.isdir("/proc"):  # no start times to compare: existence is all we can know
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    current = process_start_time(pid)
    return current is not None and (start is None or current == start)


_WRAPPERS = ("bwrap", "unshare")


# ------------------------------------------------------------------------------------------ mounts

# Paths every container sees, and the workspace directory behind each.
BUILTIN_TARGETS: tuple[str, ...] = ("/.shoal", "/data", "/tmp", "/testkube")
RUN_DIR = "/.shoal-run"  # the workspace and artifact directory as the toolkit sees them


class PreparationError(ExecutionError):
    """The execution cannot start: it fails at initialization with this message."""


def _octal_mode(mode: Any) -> int | None:
    if mode is None or mode == "":
        return None
    if isinstance(mode, int):
        return mode
    text = str(mode).strip()
    try:
        return int(text, 8)
    except ValueError as exc:
        raise PreparationError(f"content.files: mode {mode!r} is not an octal file mode") from exc


def _is_under(path: str, root: str) -> bool:
    root = root.rstrip("/") or "/"
    return path == root or path.startswith(root + "/") or root == "/"


def _volume_source(ws: Workspace, plan: Plan, volume: Mapping[str, Any]) -> tuple[Path, bool]:
    """Host directory of one pod volume and whether it must be read-only."""
    name = str(volume.get("name", ""))
    if "emptyDir" in volume or "persistentVolumeClaim" in volume or "ephemeral" in volume:
        path = ws.volume(name)
        path.mkdir(parents=True, exist_ok=True)
        return path, False
    if "hostPath" in volume:
        host = Path(str((volume.get("hostPath") or {}).get("path", "")))
        if not host.is_absolute():
            raise PreparationError(f"volume {name!r}: hostPath.path must be an absolute path")
        kind = str((volume.get("hostPath") or {}).get("type", "") or "")
        if not host.exists():
            if kind in ("", "DirectoryOrCreate"):
                host.mkdir(parents=True, exist_ok=True)
            elif kind == "FileOrCreate":
                host.parent.mkdir(parents=True, exist_ok=True)
                host.touch()
            else:
                raise PreparationError(f"volume {name!r}: hostPath {host} does not exist (type {kind})")
        return host, False
    for key, ref_key in (("configMap", "name"), ("secret", "secretName")):
        if key in volume:
            source = volume.get(key) or {}
            if source.get("optional"):
                path = ws.volume(name)
                path.mkdir(parents=True, exist_ok=True)
                return path, True
            raise PreparationError(
                f"volume {name!r}: {key} {source.get(ref_key)!r} does not exist locally (the local runtime "
                f"has no {key}s); mark it `optional: true` to mount it empty, or use content.files"
            )
    kinds = sorted(k for k in volume if k != "name")
    raise PreparationError(
        f"volume {name!r}: {', '.join(kinds) or 'no source'} volumes cannot be mounted locally"
    )


def volume_mounts(ws: Workspace, plan: Plan, container: Container) -> list[Mount]:
    """The pod volumes a container mounts, checked: each mount must name a declared volume."""
    declared: dict[str, Mapping[str, Any]] = {}
    for volume in plan.pod.get("volumes") or []:
        declared[str(volume.get("name"))] = volume
    for claim in plan.pvcs:
        declared.setdefault(claim, {"name": claim, "persistentVolumeClaim": {"claimName": claim}})
    mounts: list[Mount] = []
    for vm in container.volume_mounts:
        name = str(vm.get("name", ""))
        target = str(vm.get("mountPath", ""))
        if name not in declared:
            raise PreparationError(
                f'container {container.name or container.index}: volumeMount "{name}" (at {target}) names '
                "a volume that pod.volumes does not declare"
            )
        if not target.startswith("/"):
            raise PreparationError(f"volumeMount {name!r}: mountPath {target!r} must be absolute")
        source, read_only = _volume_source(ws, plan, declared[name])
        sub = str(vm.get("subPath", "") or "")
        if sub:
            if sub.startswith("/") or ".." in Path(sub).parts:
                raise PreparationError(f"volumeMount {name!r}: subPath {sub!r} must be a relative path")
            source = source / sub
            if not source.exists():
                source.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(source, target.rstrip("/") or "/", read_only or bool(vm.get("readOnly"))))
    return mounts


def _place(ws: Workspace, mounts: list[Mount], path: str, what: str) -> Path | None:
    """Host location behind ``path`` when a mount covers it; None when it lies in the host's own tree.

    A path whose top-level directory does not exist on the host gets a new workspace-backed root
    (``/config`` for ``/config/app.json``), added to ``mounts``.
    """
    for m in sorted(mounts, key=lambda m: len(m.target), reverse=True):
        if _is_under(path, m.target):
            rest = path[len(m.target.rstrip("/")) :].lstrip("/")
            return m.source / rest if rest else m.source
    top = "/" + path.strip("/").split("/")[0]
    if not os.path.lexists(top):
        root = ws.roots / top.lstrip("/")
        root.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(root, top))
        rest = path[len(top) :].lstrip("/")
        return root / rest if rest else root
    del what  # kept for symmetry of call sites' messages
    return None


def container_mounts(ws: Workspace, plan: Plan, container: Container, artifacts: Path) -> list[Mount]:
    """Everything a container sees from the workspace, in mount order."""
    mounts = [
        Mount(ws.shoal, "/.shoal"),
        Mount(ws.data, "/data"),
        Mount(ws.tmp, "/tmp"),
        Mount(ws.testkube, "/testkube"),
        Mount(ws.root, RUN_DIR + "/workspace"),
        Mount(artifacts, RUN_DIR + "/artifacts"),
    ]
    for m in volume_mounts(ws, plan, container):
        if _place(ws, mounts, m.target, "volumeMount") is None and not os.path.isdir(m.target):
            raise PreparationError(
                f"volumeMount at {m.target}: the directory does not exist on this host; the local runtime "
                "mounts volumes at new top-level paths or over existing directories only"
            )
        mounts.append(m)
    # Top-level content roots created for files (see write_files) are mounted in every container.
    for root in sorted(ws.roots.iterdir()) if ws.roots.is_dir() else []:
        target = "/" + root.name
        if not any(m.target == target for m in mounts):
            mounts.append(Mount(root, target))
    return mounts


def write_files(ws: Workspace, plan: Plan, artifacts: Path) -> list[Mount]:
    """Write ``content.files`` before the first container; file mounts for host paths they overlay."""
    extra: list[Mount] = []
    overlay_dir = ws.root / "files"
    for index, item in enumerate(plan.files):
        path = str(item.get("path", ""))
        if not path.startswith("/"):
            raise PreparationError(f"content.files: path {path!r} must be absolute")
        content = item.get("content")
        data = content.encode() if isinstance(content, str) else b""
        mode = _octal_mode(item.get("mode"))
        # Files may land in any container's mounts: look at the union of them.
        mounts: list[Mount] = []
        for container in plan.containers:
            mounts.extend(container_mounts(ws, plan, container, artifacts))
        if not plan.containers:
            mounts = [Mount(ws.data, "/data"), Mount(ws.tmp, "/tmp"), Mount(ws.testkube, "/testkube")]
        host = _place(ws, mounts, path, "content.files")
        if host is None:
            if not os.path.isfile(path):
                raise PreparationError(
                    f"content.files: {path} is neither under /data, /tmp, /testkube, a volume or a new "
                    "top-level directory, nor an existing host file the local runtime can overlay"
                )
            overlay_dir.mkdir(exist_ok=True)
            host = overlay_dir / f"{index}-{Path(path).name}"
            extra.append(Mount(host, path))
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_bytes(data)
        if mode is not None:
            host.chmod(mode)
    return extra


# ------------------------------------------------------------------------------------------ event log


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def event_line(event: ExecutionEvent) -> bytes:
    if event.type == "log":
        # The hot path (a million log lines): the C string encoder, no dict, one format.
        ref = "null" if event.ref is None else _encode_str(event.ref)
        return f'{{"seq":{event.seq},"ts":{event.ts},"type":"log","ref":{ref},"line":{_encode_str(event.line or "")}}}\n'.encode()
    return (json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def encode_events(events: list[ExecutionEvent]) -> bytes:
    """Lines of ``events`` for events.jsonl, as ``event_line`` writes them, built in one go."""
    middles: dict[tuple[int, str | None], str] = {}  # (ts, ref) -> the fields between seq and line
    parts: list[str] = []
    append = parts.append
    enc = _encode_str
    for e in events:
        if e.type == "log":
            key = (e.ts, e.ref)
            middle = middles.get(key)
            if middle is None:
                ref = "null" if e.ref is None else enc(e.ref)
                middle = middles[key] = f',"ts":{e.ts},"type":"log","ref":{ref},"line":'
            append(f'{{"seq":{e.seq}{middle}{enc(e.line or "")}}}\n')
        else:
            append(json.dumps(e.to_dict(), separators=(",", ":"), ensure_ascii=False) + "\n")
    return "".join(parts).encode()


_LOG_PREFIX = re.compile(r'\{"seq":(\d+),"ts":(\d+),"type":"log","ref":')


def parse_event_line(line: bytes) -> ExecutionEvent:
    """One line of events.jsonl; log lines (as ``event_line`` writes them) skip the generic decoder."""
    text = line.decode()
    match = _LOG_PREFIX.match(text)
    if match is not None:
        pos = match.end()
        ref: str | None = None
        if text.startswith("null", pos):
            pos += 4
        else:
            ref, pos = _scan_str(text, pos + 1)
        if text.startswith(',"line":"', pos):
            body, pos = _scan_str(text, pos + 9)
            if text[pos : pos + 1] == "}":
                return ExecutionEvent.log(int(match.group(1)), int(match.group(2)), ref, body)
    data = json.loads(text)
    return ExecutionEvent.from_dict(data)


_SEQ = re.compile(rb'^\{"seq":(\d+),')


def read_events(path: Path, *, logs: bool = False) -> tuple[list[ExecutionEvent], int, int]:
    """Complete events stored in ``path`` (log lines only with ``logs``), the byte size up to the last
    complete line (a runner killed mid-write may leave half a line) and the last seq."""
    events: list[ExecutionEvent] = []
    good = 0
    last = 0
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return events, 0, 0
    with fh:
        for raw in fh:
            if not raw.endswith(b"\n"):
                break
            match = _SEQ.match(raw)
            if match is None:
                break
            if logs or b'"type":"log"' not in raw[:64]:
                try:
                    events.append(parse_event_line(raw))
                except (ValueError, KeyError, TypeError):
                    break
            last = int(match.group(1))
            good += len(raw)
    return events, good, last


class EventLog:
    """Appends seq-numbered events to ``events.jsonl``: flushed per batch, fsync'd at most every
    ``fsync_interval`` seconds (in a background thread, so a slow disk never stalls the log stream)
    and at the end; a runner that dies loses at most a moment of log."""

    def __init__(self, path: Path, *, next_seq: int = 1, truncate_at: int | None = None) -> None:
        self.path = path
        self.next_seq = next_seq
        self._fh = path.open("ab")
        if truncate_at is not None:
            self._fh.truncate(truncate_at)
        self._last_sync = time.monotonic()
        self.fsync_interval = 0.25
        self._syncing: threading.Thread | None = None
        self._changed = asyncio.Event()
        self.closed = False

    def write(self, events: list[ExecutionEvent]) -> None:
        if events:
            self._fh.write(encode_events(events))
            self.next_seq = events[-1].seq + 1

    def flush(self) -> None:
        self._fh.flush()
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_interval and (
            self._syncing is None or not self._syncing.is_alive()
        ):
            self._last_sync = now
            self._syncing = threading.Thread(target=os.fsync, args=(self._fh.fileno(),), daemon=True)
            self._syncing.start()
        self._wake()

    def close(self) -> None:
        if not self.closed:
            self._fh.flush()
            if self._syncing is not None:
                self._syncing.join()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self.closed = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def changed(self) -> None:
        await self._changed.wait()


async def tail_batches(
    path: Path,
    from_seq: int,
    is_done: Callable[[], bool],
    wait: Callable[[], Awaitable[None]],
    stop_before: int | None = None,
) -> AsyncIterator[list[ExecutionEvent]]:
    """Events of ``path`` with from_seq <= seq (< stop_before), in batches, following the file until
    ``is_done()`` at its end."""
    while not path.exists():
        if is_done():
            return
        await wait()
    with path.open("rb") as fh:
        partial = b""
        while True:
            chunk = fh.read(1 << 20)
            if chunk:
                lines = (partial + chunk).split(b"\n")
                partial = lines.pop()
                batch: list[ExecutionEvent] = []
                for raw in lines:
                    if raw:
                        event = parse_event_line(raw)
                        if stop_before is not None and event.seq >= stop_before:
                            if batch:
                                yield batch
                            return
                        if event.seq >= from_seq:
                            batch.append(event)
                if batch:
                    yield batch
                continue
            if is_done():
                rest = fh.read()
                if not rest and not partial:
                    return
                partial += rest
                if rest:
                    continue
                return
            await wait()


async def tail_events(
    path: Path,
    from_seq: int,
    is_done: Callable[[], bool],
    wait: Callable[[], Awaitable[None]],
    stop_before: int | None = None,
) -> AsyncIterator[ExecutionEvent]:
    """``tail_batches``, one event at a time."""
    async for batch in tail_batches(path, from_seq, is_done, wait, stop_before):
        for event in batch:
            yield event


class _Subscriber:
    """An in-process observer fed with the event batches as they are written (no file round trip).

    It never slows the execution down: when it falls ``limit`` events behind, it is dropped to
    reading the rest from ``events.jsonl``, which holds everything anyway.
    """

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self.pending = 0
        self.batches: collections.deque[list[ExecutionEvent]] = collections.deque()
        self.ready = asyncio.Event()
        self.closed = False
        self.lag_from: int | None = None  # first seq to read from the file after falling behind

    def push(self, batch: list[ExecutionEvent]) -> None:
        if self.lag_from is not None or not batch:
            return
        if self.pending + len(batch) > self.limit and self.batches:
            self.lag_from = self.batches[0][0].seq
            self.batches.clear()
            self.pending = 0
        else:
            self.batches.append(batch)
            self.pending += len(batch)
        self.ready.set()

    def pop(self) -> list[ExecutionEvent]:
        batch = self.batches.popleft()
        self.pending -= len(batch)
        return batch

    def close(self) -> None:
        self.closed = True
        self.ready.set()


# ------------------------------------------------------------------------------------------ the runtime

ABORT_DETAILS = "The execution has been aborted."
VANISHED_DETAILS = "the runner of this execution stopped; what had not finished cannot continue"
INIT_EXIT_CODES = {0: "ok", 137: "aborted", 155: "input error", 190: "internal error"}
# The host environment a step inherits: enough to find tools and keep the locale, nothing personal.
HOST_ENV_KEEP = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "HOSTNAME")


@dataclass(slots=True)
class _Run:
    """What the runner holds for one execution it drives (or re-attached to)."""

    job: ExecutionJob
    ws: Workspace
    artifacts: Path
    log: EventLog
    state: ExecutionState
    done: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: ExecutionOutcome | None = None
    process: asyncio.subprocess.Process | None = None
    stopping: bool = False
    task: asyncio.Task[None] | None = None
    parser: MarkerParser | None = None  # one for the whole execution: stages span containers
    deadline: asyncio.Task[None] | None = None
    subscribers: list[_Subscriber] = field(default_factory=list)
    stop_reason: str = ABORT_DETAILS


class LocalRuntime:
    """Runs Plans as local processes, one workspace per execution (see README.md)."""

    name = "local"

    def __init__(
        self,
        home: Path | None = None,
        *,
        isolation: Isolation = "default",
        sandbox: SandboxChoice = "auto",
        kill_grace: float = 5.0,
    ) -> None:
        self.home = home or shoal_home()
        self.isolation: Isolation = isolation
        self.sandbox_choice: SandboxChoice = sandbox
        self.kill_grace = kill_grace
        self._sandbox: Sandbox | None = None
        self._runs: dict[str, _Run] = {}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalRuntime:
        """The runtime a toolkit process should use: same home, isolation and sandbox as its parent."""
        e = os.environ if env is None else env
        isolation: Isolation = "strict" if e.get("SHOAL_ISOLATION") == "strict" else "default"
        choice = e.get("SHOAL_SANDBOX", "auto")
        sandbox: SandboxChoice = choice if choice in ("auto", "bwrap", "unshare", "none") else "auto"  # type: ignore[assignment]
        home = e.get("SHOAL_HOME")
        return cls(Path(home) if home else None, isolation=isolation, sandbox=sandbox)

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = choose_sandbox(self.sandbox_choice)
        return self._sandbox

    def workspace(self, execution_id: str) -> Workspace:
        return Workspace.for_execution(execution_id, self.home)

    # ------------------------------------------------------------------ Runtime protocol

    async def start(self, job: ExecutionJob) -> ExecutionHandle:
        ws = Workspace(job.workspace) if job.workspace else self.workspace(job.execution_id)
        if ws.events.exists() or ws.execution_file.exists():
            raise ExecutionError(f"execution {job.execution_id} already exists in {ws.root}")
        ws.ensure()
        artifacts = job.artifacts_dir or ws.artifacts
        artifacts.mkdir(parents=True, exist_ok=True)
        ws.write_json(ws.job_file, _job_record(job, ws, artifacts, self))
        ws.plan_file.write_text(json.dumps(job.plan.to_dict()))
        run = _Run(
            job=job,
            ws=ws,
            artifacts=artifacts,
            log=EventLog(ws.events),
            state=ExecutionState.for_plan(job.plan),
        )
        self._runs[job.execution_id] = run
        self._write_runner(run, None)
        self._emit(run, [self._event(run, "status", status="running")])
        self._emit(run, [self._event(run, "initialization", ref=INIT_REF, status="running")])
        run.task = asyncio.create_task(self._drive(run))
        handle = ExecutionHandle(job.execution_id, str(ws.root), self.name)
        deadline = job.plan.job.get("activeDeadlineSeconds")
        if isinstance(deadline, int | float) and not isinstance(deadline, bool) and deadline > 0:
            run.deadline = asyncio.create_task(self._enforce_deadline(handle, run, float(deadline)))
        return handle

    async def _enforce_deadline(self, handle: ExecutionHandle, run: _Run, seconds: float) -> None:
        """``job.activeDeadlineSeconds``: Kubernetes kills the pod when it passes; so do we."""
        try:
            await asyncio.wait_for(asyncio.shield(run.done.wait()), seconds)
        except TimeoutError:
            run.stop_reason = f"job.activeDeadlineSeconds ({seconds:g}s) passed"
            await self.stop(handle)

    async def observe(self, handle: ExecutionHandle, from_seq: int = 0) -> AsyncIterator[ExecutionEvent]:
        async for batch in self.observe_batches(handle, from_seq):
            for event in batch:
                yield event

    def observe_batches(
        self, handle: ExecutionHandle, from_seq: int = 0
    ) -> AsyncIterator[list[ExecutionEvent]]:
        """``observe`` in batches (as the runtime writes them): for consumers of very long logs."""
        run = self._runs.get(handle.execution_id)
        ws = Workspace(Path(handle.where))
        if run is not None:
            return self._observe_live(run, max(from_seq, run.job.resume_from))

        async def poll() -> None:
            await asyncio.sleep(0.05)

        return tail_batches(ws.events, from_seq, ws.execution_file.exists, poll)

    async def _observe_live(self, run: _Run, from_seq: int) -> AsyncIterator[list[ExecutionEvent]]:
        """What is stored (from the file), then the live batches of this runner."""
        path = run.ws.events
        if run.done.is_set():
            async for batch in tail_batches(path, from_seq, run.done.is_set, run.log.changed):
                yield batch
            return
        sub = _Subscriber()
        live_from = run.log.next_seq
        run.subscribers.append(sub)
        try:
            if from_seq < live_from:
                async for batch in tail_batches(path, from_seq, lambda: True, run.log.changed, live_from):
                    yield batch
            while True:
                while sub.batches:
                    batch = sub.pop()
                    if batch[0].seq < from_seq:
                        batch = [e for e in batch if e.seq >= from_seq]
                    if batch:
                        yield batch
                if sub.lag_from is not None:
                    start = max(from_seq, sub.lag_from)
                    async for batch in tail_batches(path, start, run.done.is_set, run.log.changed):
                        yield batch
                    return
                if sub.closed:
                    return
                sub.ready.clear()
                await sub.ready.wait()
        finally:
            run.subscribers.remove(sub)

    async def wait(self, handle: ExecutionHandle) -> ExecutionOutcome:
        run = self._runs.get(handle.execution_id)
        if run is not None:
            await run.done.wait()
            assert run.outcome is not None
            return run.outcome
        ws = Workspace(Path(handle.where))
        while not ws.execution_file.exists():
            await asyncio.sleep(0.05)
        doc = ws.read_json(ws.execution_file) or {}
        return ExecutionOutcome(str(doc.get("result", {}).get("status", "aborted")), doc)

    async def stop(self, handle: ExecutionHandle, *, grace: float | None = None) -> None:
        run = self._runs.get(handle.execution_id)
        if run is None:
            raise ExecutionError(f"execution {handle.execution_id} is not run by this runner")
        if run.done.is_set():
            return
        run.stopping = True
        proc = run.process
        if proc is not None and proc.returncode is None:
            wrapped = self.sandbox.kind != "none"
            signal_tree(
                proc.pid, signal.SIGTERM, include_root=not wrapped, spare=_WRAPPERS if wrapped else ()
            )
            # The init program kills the running operation itself (TERM, KILL after its own grace)
            # and prints the abort markers; give it that long and a little more before SIGKILL.
            wait = (self.kill_grace if grace is None else grace) + 2.0
            try:
                await asyncio.wait_for(asyncio.shield(run.done.wait()), wait)
            except TimeoutError:
                if proc.returncode is None:
                    signal_tree(proc.pid, signal.SIGKILL, include_root=True)
        await run.done.wait()

    async def attach(self, execution_id: str) -> ExecutionHandle | None:
        return await self.attach_workspace(self.workspace(execution_id), execution_id)

    async def attach_workspace(
        self, ws: Workspace, execution_id: str | None = None
    ) -> ExecutionHandle | None:
        """Re-attach to the execution in ``ws``: observe it when its runner lives, else finalise it."""
        record = ws.read_json(ws.job_file)
        if record is None:
            return None
        eid = execution_id or str(record.get("id"))
        handle = ExecutionHandle(eid, str(ws.root), self.name)
        if eid in self._runs or ws.execution_file.exists():
            return handle
        runner = ws.read_json(ws.runner_file) or {}
        if _alive(runner.get("pid"), runner.get("pid_start")) and runner.get("pid") != os.getpid():
            return handle  # another runner drives it: observe and wait through the files
        await self._finalise_orphan(ws, eid, record, runner)
        return handle

    # ------------------------------------------------------------------ driving one execution

    def _event(self, run: _Run, type_: str, **fields: Any) -> ExecutionEvent:
        seq = run.log.next_seq
        run.log.next_seq += 1
        return ExecutionEvent(seq=seq, ts=now_ms(), type=type_, **fields)  # type: ignore[arg-type]

    def _emit(self, run: _Run, events: list[ExecutionEvent]) -> None:
        if not events:
            return
        run.log.write(events)
        state = run.state
        apply = state.apply
        for event in events:
            if event.type == "log" and event.seq == state.last_seq + 1:
                # A log line changes no status: consume its seq without the transition table (the
                # hot path of a step that prints a million lines).
                state.last_seq = event.seq
                state.log_lines += 1
            else:
                apply(event)
        run.log.flush()
        for sub in run.subscribers:
            sub.push(events)

    async def _drive(self, run: _Run) -> None:
        try:
            await self._drive_containers(run)
        except Exception as exc:  # the execution records the failure; the runner itself goes on
            self._emit(run, [self._event(run, "status", status="aborted", details=f"local runtime: {exc}")])
        finally:
            self._finish(run)

    async def _drive_containers(self, run: _Run) -> None:
        plan = run.job.plan
        try:
            sandbox = self.sandbox
            extra = self._prepare(run, sandbox)
        except (ExecutionError, OSError) as exc:
            details = str(exc) if isinstance(exc, ExecutionError) else f"preparing the workspace: {exc}"
            self._emit(
                run, [self._event(run, "initialization", ref=INIT_REF, status="failed", details=details)]
            )
            return
        if run.stopping:
            self._emit(run, [self._event(run, "status", status="aborted", details=run.stop_reason)])
            return
        self._emit(run, [self._event(run, "initialization", ref=INIT_REF, status="passed")])
        for batch, mounts in _batches(run, plan):
            if run.stopping:
                break
            code = await self._run_batch(run, sandbox, batch, [*mounts, *extra])
            if code == 0:
                continue
            if code != 137 or not run.stopping:
                await self._finalise_aborted(run, sandbox)
                where = ", ".join(str(c.index) for c in batch)
                details = f"the init program (container {where}) ended with {_describe_exit(code)}"
                if run.stopping:
                    details = run.stop_reason
                self._emit(run, [self._event(run, "status", status="aborted", details=details)])
            break
        if run.stopping and not run.state.is_finished:
            await self._finalise_aborted(run, sandbox)
            self._emit(run, [self._event(run, "status", status="aborted", details=run.stop_reason)])

    def _prepare(self, run: _Run, sandbox: Sandbox) -> list[Mount]:
        """Workspace content before the first container: init files, busybox, files, checks."""
        ws, plan = run.ws, run.job.plan
        if not sandbox.maps_paths:
            _require_no_mapped_paths(plan)
        for container in plan.containers:
            container_mounts(ws, plan, container, run.artifacts)  # validates the volumes
        extra = write_files(ws, plan, run.artifacts)
        for rel, content in init_files(plan).items():
            target = ws.shoal / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        shutil.copy2(sandbox.busybox, ws.shoal / "busybox")
        (ws.shoal / "plan.json").write_text(json.dumps(plan.to_dict()))
        toolkit = ws.shoal / "toolkit"
        package_root = Path(__file__).resolve().parents[2]  # the directory holding `shoal/`
        toolkit.write_text(
            f"#!{self._inside(ws, sandbox, ws.shoal)}/busybox sh\n"
            f"PYTHONPATH={shlex.quote(str(package_root))}${{PYTHONPATH:+:$PYTHONPATH}} "
            f'exec {shlex.quote(sys.executable)} -m shoal.execution._toolkit "$@"\n'
        )
        toolkit.chmod(0o755)
        sensitive = sorted(set(run.job.secrets) | set(plan.sensitive_env))
        (ws.shoal / "mask").write_text("".join(f"{name}\n" for name in sensitive))
        return extra

    def _inside(self, ws: Workspace, sandbox: Sandbox, path: Path) -> str:
        """How a step sees a workspace path."""
        if not sandbox.maps_paths:
            return str(path)
        for host, target in (
            (ws.shoal, "/.shoal"),
            (ws.data, "/data"),
            (ws.tmp, "/tmp"),
            (ws.testkube, "/testkube"),
        ):
            if path == host or host in path.parents:
                return target + ("/" + str(path.relative_to(host)) if path != host else "")
        return RUN_DIR + "/workspace/" + str(path.relative_to(ws.root))

    def _environment(self, run: _Run, sandbox: Sandbox, mounts: list[Mount]) -> dict[str, str]:
        ws = run.ws
        env = {k: os.environ[k] for k in HOST_ENV_KEEP if k in os.environ}
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
        shoal_dir = self._inside(ws, sandbox, ws.shoal)
        mapped = {m.target: (m.target if sandbox.maps_paths else str(m.source)) for m in mounts}
        env.update(
            {
                "SHOAL_DIR": shoal_dir,
                "SHOAL_BUSYBOX": f"{shoal_dir}/busybox",
                "SHOAL_TOOLKIT": f"{shoal_dir}/toolkit",
                "SHOAL_MASK": f"{shoal_dir}/mask",
                "SHOAL_DATA": self._inside(ws, sandbox, ws.data),
                "SHOAL_OUTPUTS": self._inside(ws, sandbox, ws.testkube / "outputs"),
                "SHOAL_KILL_GRACE": str(max(1, int(self.kill_grace))),
                "SHOAL_EXECUTION_ID": run.job.execution_id,
                "SHOAL_WORKSPACE": RUN_DIR + "/workspace" if sandbox.maps_paths else str(ws.root),
                "SHOAL_ARTIFACTS": RUN_DIR + "/artifacts" if sandbox.maps_paths else str(run.artifacts),
                "SHOAL_MOUNTS": json.dumps({k: v for k, v in mapped.items() if not k.startswith(RUN_DIR)}),
                "SHOAL_HOME": str(self.home),
                "SHOAL_ISOLATION": self.isolation,
                "SHOAL_SANDBOX": self.sandbox_choice,
            }
        )
        if sandbox.maps_paths:
            env["TMPDIR"] = "/tmp"
        env.update(run.job.secrets)
        return env

    async def _run_batch(
        self, run: _Run, sandbox: Sandbox, batch: list[Container], mounts: list[Mount]
    ) -> int:
        """Run consecutive containers that see the same mounts in one sandbox, one program after the
        other (a program exits non-zero only when aborted or broken, which ends the chain)."""
        ws = run.ws
        shoal_dir = self._inside(ws, sandbox, ws.shoal)
        argv = [
            f"{shoal_dir}/busybox",
            "sh",
            "-c",
            _CHAIN,
            "shoal-containers",
            *(str(c.index) for c in batch),
        ]
        if sandbox.kind == "unshare":
            ws.scratch.mkdir(exist_ok=True)
        spec = SandboxSpec(mounts=mounts, isolation=self.isolation, scratch=ws.scratch)
        command = sandbox.wrap(spec, argv)
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self._environment(run, sandbox, mounts),
            cwd="/",
            start_new_session=True,
        )
        run.process = proc
        self._write_runner(run, proc.pid)
        await self._pump(run, proc.stdout)
        code = await proc.wait()
        run.process = None
        self._write_runner(run, None)
        return 137 if code < 0 and run.stopping else (128 - code if code < 0 else code)

    async def _pump(self, run: _Run, stream: asyncio.StreamReader | None) -> None:
        """Stream a container's output through the marker parser into the event log."""
        if stream is None:
            return
        if run.parser is None:
            run.parser = MarkerParser(run.log.next_seq)
        parser = run.parser
        read = stream.read
        explain = _entrypoint_explainer(run.job.plan)
        while True:
            chunk = await read(1 << 16)
            if not chunk:
                break
            parser.next_seq = run.log.next_seq
            self._emit(run, explain(parser.feed(chunk)))
        parser.next_seq = run.log.next_seq
        self._emit(run, explain(parser.flush()))

    async def _finalise_aborted(self, run: _Run, sandbox: Sandbox) -> None:
        """Close every unfinished stage from the init journal (``lib.sh finalize-aborted``)."""
        del sandbox
        lib = run.ws.shoal / "lib.sh"
        if not lib.exists():
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SHOAL_DIR": str(run.ws.shoal),
            "SHOAL_BUSYBOX": str(run.ws.shoal / "busybox"),
            "SHOAL_DATA": str(run.ws.data),
            "SHOAL_OUTPUTS": str(run.ws.testkube / "outputs"),
        }
        proc = await asyncio.create_subprocess_exec(
            str(run.ws.shoal / "busybox"),
            "sh",
            str(lib),
            "finalize-aborted",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        await self._pump(run, proc.stdout)
        await proc.wait()

    def _finish(self, run: _Run) -> None:
        try:
            state = run.state
            final = state.status if state.is_finished else state.final_status()
            self._emit(run, [self._event(run, "status", status=str(final.value))])
            doc = execution_document(run.job, run.state, run.ws)
        except Exception as exc:  # a fault in deriving the result must never leave waiters hanging
            reason = str(exc) if len(str(exc)) <= 400 else str(exc)[:400] + "…"
            doc = _unfinished_document(run.job, run.ws, f"shoal could not derive the result: {reason}")
        run.log.close()
        run.ws.write_json(run.ws.execution_file, doc)
        for sub in run.subscribers:
            sub.close()
        with contextlib.suppress(FileNotFoundError):
            run.ws.runner_file.unlink()
        run.outcome = ExecutionOutcome(doc["result"]["status"], doc)
        run.done.set()

    def _write_runner(self, run: _Run, child: int | None) -> None:
        run.ws.write_json(
            run.ws.runner_file,
            {
                "pid": os.getpid(),
                "pid_start": process_start_time(os.getpid()),
                "child": child,
                "child_start": process_start_time(child) if child else None,
                "sandbox": self.sandbox.kind if self._sandbox else None,
            },
        )

    async def _finalise_orphan(
        self, ws: Workspace, eid: str, record: Mapping[str, Any], runner: Mapping[str, Any]
    ) -> None:
        """The runner died: kill what it left, close unfinished stages as aborted, write the result."""
        child = runner.get("child")
        if isinstance(child, int) and _alive(child, runner.get("child_start")):
            signal_tree(child, signal.SIGKILL, include_root=True)
        plan = Plan.from_dict(json.loads(ws.plan_file.read_text()))
        events, good, last = read_events(ws.events)
        state = ExecutionState.for_plan(plan)
        for event in events:
            state.apply(event)
        state.accept_gaps()
        # Log lines were skipped when reading (they change no status); they are consumed all the same.
        state.last_seq = max(state.last_seq, last)
        next_seq = last + 1
        job = ExecutionJob(
            execution_id=eid,
            plan=plan,
            workspace=ws.root,
            name=record.get("name"),
            number=int(record.get("number", 1)),
            tags=dict(record.get("tags") or {}),
        )
        artifacts = Path(str(record.get("artifacts") or ws.artifacts))
        run = _Run(
            job=job,
            ws=ws,
            artifacts=artifacts,
            log=EventLog(ws.events, next_seq=next_seq, truncate_at=good),
            state=state,
        )
        self._runs[eid] = run
        self._write_runner(run, None)
        if not state.is_finished:
            await self._finalise_aborted(run, self.sandbox)
            self._emit(run, [self._event(run, "status", status="aborted", details=VANISHED_DETAILS)])
        self._finish(run)


# ------------------------------------------------------------------------------------------ helpers


# Runs containers "$@" in turn. A TERM waits for the running program (which aborts on its own TERM
# and exits 137) instead of killing the chain under it.
_CHAIN = (
    'trap "stopping=1" TERM INT; for n in "$@"; do "$SHOAL_BUSYBOX" sh "$SHOAL_DIR/c$n.sh" || exit $?; '
    '[ -z "$stopping" ] || exit 137; done'
)


def _batches(run: _Run, plan: Plan) -> list[tuple[list[Container], list[Mount]]]:
    """Consecutive containers grouped by identical mounts (one sandbox start for each group)."""
    out: list[tuple[list[Container], list[Mount]]] = []
    for container in plan.containers:
        mounts = container_mounts(run.ws, plan, container, run.artifacts)
        if out and out[-1][1] == mounts:
            out[-1][0].append(container)
        else:
            out.append(([container], mounts))
    return out


def _entrypoint_explainer(plan: Plan) -> Callable[[list[ExecutionEvent]], list[ExecutionEvent]]:
    """A `run` without `command` needs the image's entrypoint, which a local run cannot know (images
    are not pulled): name the image and the field to set in that step's error."""
    images: dict[str, str] = {}
    for stage in plan.stages.values():
        if stage.kind == "run" and not stage.command and stage.container is not None:
            images[stage.ref] = plan.containers[stage.container].image
    if not images:
        return lambda events: events

    def explain(events: list[ExecutionEvent]) -> list[ExecutionEvent]:
        for i, event in enumerate(events):
            if event.details and event.ref in images and event.type == "step":
                image = images[event.ref]
                details = (
                    f"run: the image {image} would run its own entrypoint, which a local run cannot know "
                    "(images are not pulled; steps run host tools): set run.command"
                )
                events[i] = dataclasses.replace(event, details=details)
        return events

    return explain


def _describe_exit(code: int) -> str:
    if code > 128:
        try:
            return f"exit code {code} (killed by {signal.Signals(code - 128).name})"
        except ValueError:
            return f"exit code {code}"
    meaning = INIT_EXIT_CODES.get(code)
    return f"exit code {code} ({meaning})" if meaning else f"exit code {code}"


_MAPPED_PATH = re.compile(r"(?<![\w./-])/(?:data|testkube|\.shoal)(?![\w.-])")


def _require_no_mapped_paths(plan: Plan) -> None:
    """Without a mount namespace the Kubernetes paths cannot be provided: refuse workflows using them."""
    used: set[str] = set()
    if plan.pod.get("volumes") or any(c.volume_mounts for c in plan.containers):
        used.add("pod volumes")
    for f in plan.files:
        used.add(str(f.get("path")))
    text = json.dumps([plan.to_dict()["stages"]])
    used.update(m.group(0) for m in _MAPPED_PATH.finditer(text))
    if used:
        raise ExecutionError(
            'steps run without a mount namespace (sandbox "none", or no bubblewrap/unshare on this host), so the local '
            f"runtime cannot provide the paths this workflow uses: {', '.join(sorted(used))}"
        )


def _job_record(job: ExecutionJob, ws: Workspace, artifacts: Path, runtime: LocalRuntime) -> dict[str, Any]:
    """job.json: what a re-attaching runner needs (never the secrets' values)."""
    return {**_job_record_base(job, ws), "artifacts": str(artifacts), "isolation": runtime.isolation}


def _job_record_base(job: ExecutionJob, ws: Workspace) -> dict[str, Any]:
    return {
        "id": job.execution_id,
        "name": job.name or f"{job.plan.workflow}-{job.number}",
        "number": job.number,
        "workflow": job.plan.workflow,
        "config": {k: v for k, v in job.config.items() if not _is_sensitive_config(job.plan, k)},
        "secrets": sorted(job.secrets),
        "tags": dict(job.tags or job.plan.tags),
        "workspace": str(ws.root),
        "scheduledAt": format_timestamp(now_ms()),
    }


def _is_sensitive_config(plan: Plan, key: str) -> bool:
    value = plan.config.get(key)
    return value is not None and value.sensitive


def execution_document(job: ExecutionJob, state: ExecutionState, ws: Workspace) -> dict[str, Any]:
    """The final execution, shaped like Testkube's TestWorkflowExecution (reference §5.1)."""
    record = ws.read_json(ws.job_file) or {}
    plan = job.plan
    result = state.result()
    config_params = {
        name: {
            "value": value.value,
            "defaultValue": value.value if value.default else None,
            "sensitive": True,
        }
        if value.sensitive
        else {"value": value.value, "sensitive": False}
        for name, value in plan.config.items()
    }
    for spec in config_params.values():
        if spec.get("sensitive"):
            spec.pop("value", None)
            spec.pop("defaultValue", None)
    return {
        "id": job.execution_id,
        "name": record.get("name") or job.name or f"{plan.workflow}-{job.number}",
        "number": record.get("number", job.number),
        "namespace": str(plan.job.get("namespace") or ""),
        "scheduledAt": record.get("scheduledAt"),
        "statusAt": format_timestamp(result.finished_at or now_ms()),
        "signature": [node.to_dict() for node in plan.signature],
        "result": result.to_dict(),
        "output": [
            {"ref": ref, "name": "outputs", "value": dict(values)} for ref, values in state.outputs.items()
        ],
        "reports": [
            {"ref": r.ref, "kind": r.kind, "file": r.file, "summary": r.summary} for r in state.reports
        ],
        "artifacts": [{"ref": a.ref, "name": a.name, "size": a.size} for a in state.artifacts],
        "artifactsDir": record.get("artifacts") or str(ws.artifacts),
        "workspace": str(ws.root),
        "workflow": {"name": plan.workflow, "labels": dict(plan.labels)},
        "tags": dict(record.get("tags") or plan.tags),
        "configParams": config_params,
        "runnerId": "local",
    }


def run_plan(
    job: ExecutionJob,
    *,
    runtime: LocalRuntime | None = None,
    on_event: Callable[[ExecutionEvent], None] | None = None,
    cancel: threading.Event | None = None,
) -> ExecutionOutcome:
    """Run ``job`` to its end from synchronous code (the toolkit's workers): events go to ``on_event``;
    setting ``cancel`` (or SIGTERM to this process, when called from the main thread) stops it."""
    rt = runtime or LocalRuntime.from_env()

    async def main() -> ExecutionOutcome:
        handle = await rt.start(job)
        loop = asyncio.get_running_loop()
        stop_task: list[asyncio.Task[None]] = []

        def request_stop() -> None:
            if not stop_task:
                stop_task.append(loop.create_task(rt.stop(handle)))

        installed = False
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGTERM, request_stop)
                installed = True
        watcher: asyncio.Task[None] | None = None
        if cancel is not None:

            async def watch() -> None:
                while not cancel.is_set():
                    await asyncio.to_thread(cancel.wait, 0.2)
                request_stop()

            watcher = loop.create_task(watch())
        try:
            async for event in rt.observe(handle):
                if on_event is not None:
                    on_event(event)
            return await rt.wait(handle)
        finally:
            if watcher is not None:
                watcher.cancel()
            if installed:
                loop.remove_signal_handler(signal.SIGTERM)
            for task in stop_task:
                await task

    return asyncio.run(main())


def _unfinished_document(job: ExecutionJob, ws: Workspace, message: str) -> dict[str, Any]:
    """The execution document when its result cannot be derived: aborted, with the reason."""
    now = format_timestamp(now_ms())
    return {
        "id": job.execution_id,
        "name": job.name or f"{job.plan.workflow}-{job.number}",
        "signature": [node.to_dict() for node in job.plan.signature],
        "result": {
            "status": "aborted",
            "predictedStatus": "aborted",
            "finishedAt": now,
            "initialization": {"status": "aborted", "errorMessage": message},
            "steps": {},
        },
        "output": [],
        "reports": [],
        "artifacts": [],
        "workspace": str(ws.root),
        "workflow": {"name": job.plan.workflow},
    }


def record_failed_execution(
    home: Path | None,
    execution_id: str,
    workflow: str,
    message: str,
    *,
    number: int = 1,
    config: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An execution that failed before it had a Plan (missing template, missing config): its
    workspace holds the events and the result, like any other, so ``--attach`` and the agent see it."""
    ws = Workspace.for_execution(execution_id, home)
    ws.root.mkdir(parents=True, exist_ok=True)
    plan = Plan(workflow=workflow, root="", stages={}, signature=[], containers=[])
    job = ExecutionJob(execution_id=execution_id, plan=plan, config=dict(config or {}), number=number)
    ws.write_json(ws.job_file, {**_job_record_base(job, ws), "artifacts": str(ws.artifacts)})
    ws.plan_file.write_text(json.dumps(plan.to_dict()))
    state = ExecutionState.for_plan(plan)
    log = EventLog(ws.events)
    ts = now_ms()
    events = [
        ExecutionEvent(seq=1, ts=ts, type="status", status="running"),
        ExecutionEvent(seq=2, ts=ts, type="initialization", ref=INIT_REF, status="running"),
        ExecutionEvent(seq=3, ts=ts, type="initialization", ref=INIT_REF, status="failed", details=message),
        ExecutionEvent(seq=4, ts=ts, type="status", status="failed", details=message),
    ]
    log.write(events)
    log.close()
    for event in events:
        state.apply(event)
    doc = execution_document(job, state, ws)
    ws.write_json(ws.execution_file, doc)
    return doc


def _is_a_runtime(runtime: LocalRuntime) -> Runtime:
    """mypy checks here that LocalRuntime implements the Runtime protocol."""
    return runtime
