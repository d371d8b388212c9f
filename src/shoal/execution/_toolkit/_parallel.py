"""The ``parallel`` operation: run every worker of the stage as its own sub-plan, at most
``parallelism`` at once, with ``transfer`` before a worker starts and ``fetch`` after it ends.
A worker's artifacts and reports land under ``<ref>/<index + 1>/`` of the parent's (as in Testkube).

Worker output is printed live as ``[worker N] line``; the ``logs`` condition (evaluated on the worker's
result, default: keep) decides whether the worker's log is also kept as the artifact
``logs/<ref>/worker-<N>.log``. ``failFast`` aborts every other worker after the first failure. The stage
passes only when every worker passed.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import Any

from ._context import PARALLEL, ToolkitError, ToolkitRun
from ._subplans import (
    Instance,
    InstanceSource,
    Mounts,
    SubJob,
    SubPlanRunner,
    children_root,
    condition_holds,
    copy_tree,
    file_globs,
    parallel_spec,
    secrets_for,
    sub_execution_id,
    transfer_into,
)

DEFAULT_PARALLELISM = 1000


def fetch_from(run: ToolkitRun, spec: dict[str, Any], mounts: Mounts, label: str) -> None:
    for entry in spec.get("fetch") or []:
        source = str(entry.get("from") or "")
        if not source:
            raise ToolkitError("parallel.fetch[].from is required")
        dest = run.host_path(str(entry.get("to") or source))
        n = copy_tree(mounts.host(source), file_globs(entry), dest)
        run.log(f"{label} fetched {n} files from {source}")


class PauseBarrier:
    """``paused: true`` on the workers synchronises them (as in Testkube): each pauses before its first
    operation, and all are resumed at once when every running worker is paused and no more can start."""

    def __init__(self, total: int, parallelism: int, runner: SubPlanRunner) -> None:
        self.pending = total
        self.parallelism = parallelism
        self.runner = runner
        self.lock = threading.Lock()
        self.running: set[int] = set()
        self.paused: dict[int, SubJob] = {}

    def started(self, index: int) -> None:
        with self.lock:
            self.pending -= 1
            self.running.add(index)

    def finished(self, index: int) -> None:
        with self.lock:
            self.running.discard(index)
            self.paused.pop(index, None)
            ready = self._ready()
        self._resume(ready)

    def pause(self, index: int, job: SubJob) -> None:
        with self.lock:
            self.paused[index] = job
            ready = self._ready()
        self._resume(ready)

    def _ready(self) -> list[SubJob]:
        saturated = self.pending == 0 or len(self.running) >= self.parallelism
        if self.paused and len(self.paused) == len(self.running) and saturated:
            jobs = list(self.paused.values())
            self.paused.clear()
            return jobs
        return []

    def _resume(self, jobs: list[SubJob]) -> None:
        for job in jobs:
            self.runner.resume(job)


@contextlib.contextmanager
def abort_on_sigterm(cancel: threading.Event) -> Iterator[None]:
    """SIGTERM (an abort of the parent) cancels the sub-plans instead of killing the toolkit at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        cancel.set()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_parallel(
    run: ToolkitRun, source: InstanceSource | None = None, runner: SubPlanRunner | None = None
) -> int:
    from ._subplans import CompilerInstances, default_subplans

    instances = (source or CompilerInstances()).workers(run)
    runner = runner or default_subplans(run.env)
    spec = parallel_spec(run)
    parallelism = max(1, int(spec.get("parallelism") or DEFAULT_PARALLELISM))
    fail_fast = bool(spec.get("failFast", False))
    cancel = threading.Event()
    statuses: dict[int, str] = {}
    root = children_root(run)
    barrier = PauseBarrier(len(instances), parallelism, runner)
    run.log(f"Running {len(instances)} workers (parallelism {min(parallelism, max(1, len(instances)))})")

    def work(inst: Instance) -> None:
        barrier.started(inst.index)
        try:
            work_on(inst)
        finally:
            barrier.finished(inst.index)

    def work_on(inst: Instance) -> None:
        label = f"[worker {inst.index}]"
        prefix = f"{run.ref}/{inst.index + 1}"  # Testkube's file prefix of a worker's artifacts
        if cancel.is_set():
            statuses[inst.index] = "aborted"
            run.emit(PARALLEL, {"index": inst.index, "status": "aborted"})
            return
        job = SubJob(
            execution_id=sub_execution_id(run, "worker", inst.index),
            plan=inst.plan,
            workspace=root / f"{run.ref}-worker-{inst.index}",
            secrets=secrets_for(run),
            artifacts_dir=run.artifacts_dir / prefix,
            fetch=[str(e["from"]) for e in inst.spec.get("fetch") or [] if e.get("from")],
        )
        log_file = job.workspace.parent / f"{job.workspace.name}.log"
        try:
            mounts = runner.prepare(job)
            transfer_into(run, inst.spec, mounts)
        except (ToolkitError, OSError) as exc:
            run.log(f"{label} cannot start: {exc}")
            statuses[inst.index] = "failed"
            run.emit(PARALLEL, {"index": inst.index, "status": "failed"})
            if fail_fast:
                cancel.set()
            return
        start: dict[str, Any] = {"index": inst.index, "status": "running"}
        if inst.description:
            start["description"] = inst.description
        run.emit(PARALLEL, start)
        if inst.description:
            run.log(f"{label} {inst.description}")
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("w", encoding="utf-8") as log:

            def on_line(line: str) -> None:
                log.write(line + "\n")
                run.log(f"{label} {line}")

            def on_record(kind: str, value: dict[str, Any]) -> None:
                if kind == "paused":
                    barrier.pause(inst.index, job)
                    return
                key = "name" if kind == "artifact" else "file"
                if kind in ("artifact", "report") and isinstance(value.get(key), str):
                    run.emit(kind, {**value, key: f"{prefix}/{value[key]}"})

            try:
                status = runner.run(job, on_line, cancel, on_record)
            except Exception as exc:  # a runtime failure fails this worker, not the whole toolkit
                run.log(f"{label} runtime error: {exc}")
                status = "failed"
        try:
            fetch_from(run, inst.spec, mounts, label)
        except (ToolkitError, OSError) as exc:
            run.log(f"{label} fetch failed: {exc}")
            if status == "passed":
                status = "failed"
        statuses[inst.index] = status
        run.log(f"{label} {status}")
        run.emit(PARALLEL, {"index": inst.index, "status": status})
        if condition_holds(inst.spec.get("logs", spec.get("logs")), status):
            name = f"logs/{run.ref}/worker-{inst.index}.log"
            dest = run.artifacts_dir / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log_file, dest)
            run.emit("artifact", {"name": name, "size": dest.stat().st_size})
        if status != "passed" and fail_fast and not cancel.is_set():
            run.log(f"{label} failed: aborting the other workers (failFast)")
            cancel.set()

    with (
        abort_on_sigterm(cancel),
        ThreadPoolExecutor(max_workers=min(parallelism, max(1, len(instances)))) as pool,
    ):
        for future in [pool.submit(work, inst) for inst in instances]:
            future.result()
    passed = sum(1 for s in statuses.values() if s == "passed")
    run.log(f"{passed}/{len(instances)} workers passed")
    return 0 if passed == len(instances) else 1
