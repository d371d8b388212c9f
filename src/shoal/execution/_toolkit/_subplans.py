"""Sub-plans (parallel workers, service instances, child executions) and the two seams they go through.

``InstanceSource`` turns a toolkit stage into instances (the compiler does the count/matrix/shards
arithmetic and compiles each instance's Plan); ``SubPlanRunner`` runs one sub-plan to its end as a
local process group with its own workspace (the local runtime). Both are injected, so tests and other
runtimes can provide their own.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shoal.workflow._plan import Plan

from ._context import ToolkitError, ToolkitRun, bind
from ._globs import walk_files

LineSink = Callable[[str], None]
# ("artifact" | "report", value): what a sub-plan saved into its own artifact directory;
# ("started", {"ref"}): one of its operations started running.
RecordSink = Callable[[str, dict[str, Any]], None]


@dataclass(slots=True)
class Instance:
    """One worker / service instance: its index, its spec with the instance variables bound, its Plan."""

    index: int
    spec: dict[str, Any]
    plan: Plan

    @property
    def description(self) -> str:
        return str(self.spec.get("description") or "")


class InstanceSource(Protocol):
    def workers(self, run: ToolkitRun) -> list[Instance]:
        """The workers of a ``parallel`` stage."""
        ...

    def services(self, run: ToolkitRun, name: str) -> list[Instance]:
        """The instances of service ``name`` of a ``services-start`` stage."""
        ...


@dataclass(slots=True)
class SubJob:
    execution_id: str
    plan: Plan
    workspace: Path
    secrets: dict[str, str] = field(default_factory=dict)
    artifacts_dir: Path | None = None  # None: the sub-plan's own (inside its workspace)
    # Paths (inside its volumes) the parent fetches once it ends: a runner whose volumes go with the
    # sub-plan (a pod's emptyDirs) brings them into the mounts ``prepare`` returned before ``run`` ends.
    fetch: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Mounts:
    """Where a sub-plan's volumes live on the host (virtual mount point -> host directory)."""

    paths: dict[str, Path]

    def host(self, virtual: str) -> Path:
        norm = os.path.normpath(virtual)
        for mount in sorted(self.paths, key=len, reverse=True):
            if norm == mount or norm.startswith(mount.rstrip("/") + "/"):
                rest = norm[len(mount) :].lstrip("/")
                return self.paths[mount] / rest if rest else self.paths[mount]
        raise ToolkitError(
            f"{virtual} is not inside a volume of the worker ({', '.join(sorted(self.paths))})"
        )


class SubPlanRunner(Protocol):
    def prepare(self, job: SubJob) -> Mounts:
        """Create the workspace; where its volumes are (files can be placed there before ``run``)."""
        ...

    def run(
        self, job: SubJob, on_line: LineSink, cancel: threading.Event, on_record: RecordSink | None = None
    ) -> str:
        """Run to the end (or until ``cancel``); the final execution status."""
        ...

    def resume(self, job: SubJob) -> None:
        """Resume the sub-plan's paused step (it reported ``("paused", ...)``)."""
        ...


# --------------------------------------------------------------------------- files in and out


def file_globs(entry: Mapping[str, Any]) -> list[str]:
    """``files`` of a transfer/fetch entry: globs relative to ``from`` (default everything)."""
    files = entry.get("files") or ["**/*"]
    return [str(f) for f in ([files] if isinstance(files, str) else files)]


def copy_tree(src: Path, patterns: list[str], dest: Path) -> int:
    """Copy the files under ``src`` matching ``patterns`` into ``dest`` keeping their relative paths.

    Patterns are relative to ``src`` (a leading ``/`` is ignored, ``!`` excludes); a file whose real
    path is not under ``src`` (a symlink pointing out) is skipped. Returns how many were copied.
    """
    if not src.exists():
        return 0
    real_src = os.path.realpath(src)
    absolute = []
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        absolute.append(("!" if negate else "") + os.path.join(str(src), body.lstrip("/")))
    count = 0
    for path in walk_files(absolute):
        real = os.path.realpath(path)
        if not (real == real_src or real.startswith(real_src.rstrip("/") + "/")):
            continue
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(real, target)
        count += 1
    return count


def transfer_into(run: ToolkitRun, spec: Mapping[str, Any], mounts: Mounts, label: str = "") -> None:
    """``transfer``: copy files of the parent into a sub-plan's volumes before it starts."""
    for entry in spec.get("transfer") or []:
        source = str(entry.get("from") or "")
        if not source:
            raise ToolkitError("transfer[].from is required")
        n = copy_tree(run.host_path(source), file_globs(entry), mounts.host(str(entry.get("to") or source)))
        run.log(f"{label + ' ' if label else ''}transferred {n} files from {source}")


# --------------------------------------------------------------------------- the compiler seam


def instance_variables(run: ToolkitRun) -> dict[str, Any]:
    """Variables the instance arithmetic may use: the run's context variables and the run-time ones."""
    from shoal.workflow import ExecutionContext

    raw = getattr(run.plan, "context", None)
    context = ExecutionContext.from_dict(raw) if raw else ExecutionContext()
    variables: dict[str, Any] = dict(context.variables(run.plan.workflow, run.plan.labels, run.plan.tags))
    variables.update(run.runtime_variables())
    return variables


def _expand(spec: Mapping[str, Any], variables: Mapping[str, Any]) -> list[dict[str, Any]]:
    from shoal.workflow import WorkflowError, expand_instances

    try:
        return [dict(i) for i in expand_instances(spec, variables)]
    except WorkflowError as exc:
        raise ToolkitError(str(exc)) from exc


def parallel_spec(run: ToolkitRun) -> dict[str, Any]:
    """The ``parallel`` block of a parallel stage (the compiler keeps it under ``spec.parallel``)."""
    inner = run.spec.get("parallel")
    return dict(inner) if isinstance(inner, dict) else dict(run.spec)


# Keys of an instance spec the parent itself reads; bound to each instance's variables.
_PARENT_KEYS = ("description", "transfer", "fetch", "logs")


class CompilerInstances:
    """Instances from the compiler: ``expand_instances`` (the count/matrix/shards arithmetic) and
    ``compile_worker`` / ``compile_service_instance`` (each instance's Plan)."""

    def workers(self, run: ToolkitRun) -> list[Instance]:
        from shoal.workflow import WorkflowError, compile_worker

        spec = parallel_spec(run)
        base = instance_variables(run)
        out: list[Instance] = []
        for i, variables in enumerate(_expand(spec, base)):
            scope = {**base, **variables}
            bound = {k: bind(spec[k], scope) for k in _PARENT_KEYS if k in spec and k != "logs"}
            if "logs" in spec:
                bound["logs"] = spec["logs"]
            try:
                plan = compile_worker(run.plan, run.ref, i)
            except WorkflowError as exc:
                raise ToolkitError(str(exc)) from exc
            out.append(Instance(index=i, spec={**spec, **bound}, plan=plan))
        return out

    def services(self, run: ToolkitRun, name: str) -> list[Instance]:
        from shoal.workflow import WorkflowError, compile_service_instance

        spec = (run.spec.get("services") or {}).get(name)
        if spec is None:
            raise ToolkitError(f"stage {run.ref} has no service {name!r}")
        base = instance_variables(run)
        out: list[Instance] = []
        for i, variables in enumerate(_expand(spec, base)):
            scope = {**base, **variables}
            bound = {k: bind(spec[k], scope) for k in ("description",) if k in spec}
            try:
                plan = compile_service_instance(run.plan, run.ref, name, i)
            except WorkflowError as exc:
                raise ToolkitError(str(exc)) from exc
            out.append(Instance(index=i, spec={**spec, **bound}, plan=plan))
        return out


# --------------------------------------------------------------------------- the runtime seam


class LocalSubPlans:
    """Sub-plans as local executions (``shoal.execution._local``), configured like the parent."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def prepare(self, job: SubJob) -> Mounts:
        from shoal.execution._local import Workspace

        ws = Workspace.create(job.workspace)
        return Mounts({"/data": ws.data, "/tmp": ws.tmp, "/testkube": ws.testkube})

    def run(
        self, job: SubJob, on_line: LineSink, cancel: threading.Event, on_record: RecordSink | None = None
    ) -> str:
        from shoal.execution._local import LocalRuntime, run_plan
        from shoal.execution._runtime import ExecutionJob

        operations = {ref for ref, stage in job.plan.stages.items() if stage.kind != "group"}

        def on_event(event: Any) -> None:
            if event.type == "log" and event.line is not None:
                on_line(event.line)
            elif on_record is not None and event.type == "step" and event.status == "running":
                if event.ref in operations:
                    on_record("started", {"ref": event.ref})
            elif on_record is not None and event.type == "step" and event.status == "paused":
                on_record("paused", {"ref": event.ref})
            elif on_record is not None and event.type == "artifact" and event.artifact:
                on_record("artifact", dict(event.artifact))
            elif on_record is not None and event.type == "report" and event.report:
                on_record("report", dict(event.report))

        outcome = run_plan(
            ExecutionJob(
                execution_id=job.execution_id,
                plan=job.plan,
                secrets=job.secrets,
                workspace=job.workspace,
                artifacts_dir=job.artifacts_dir,
            ),
            runtime=LocalRuntime.from_env(self.env),
            on_event=on_event,
            cancel=cancel,
        )
        return outcome.status

    def resume(self, job: SubJob) -> None:
        """Write ``resume`` into the paused program's control FIFO (init protocol §7)."""
        from shoal.execution._local import Workspace

        fifo = Workspace(job.workspace).shoal / "control"
        deadline = time.monotonic() + RESUME_WAIT_S
        while True:
            try:
                # Non-blocking: ENXIO until the program has the FIFO open for reading.
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno not in (errno.ENXIO, errno.ENOENT) or time.monotonic() > deadline:
                    raise ToolkitError(f"cannot resume {job.execution_id}: {exc.strerror}") from exc
                time.sleep(0.01)
                continue
            try:
                os.write(fd, b"resume\n")
            finally:
                os.close(fd)
            return


RESUME_WAIT_S = 10.0


def children_root(run: ToolkitRun) -> Path:
    """Where sub-plan workspaces go: ``$SHOAL_WORKSPACE/children`` (else beside the state dir)."""
    base = run.env.get("SHOAL_WORKSPACE")
    return Path(base) / "children" if base else run.shoal_dir / "children"


def sub_execution_id(run: ToolkitRun, kind: str, index: int) -> str:
    parent = run.env.get("SHOAL_EXECUTION_ID") or run.plan.workflow
    return f"{parent}-{run.ref}-{kind}{index}"


def secrets_for(run: ToolkitRun) -> dict[str, str]:
    """The sensitive env values of the parent, handed to a sub-plan through its environment only."""
    names = set(run.plan.sensitive_env)
    return {k: v for k, v in run.env.items() if k in names}


def condition_holds(source: Any, status: str) -> bool:
    """A ``logs`` condition (``always``, ``failed``, ``status == "passed"``...) for a finished instance."""
    from shoal.workflow import WorkflowError, should_keep_logs

    try:
        return should_keep_logs(source, status == "passed")
    except WorkflowError as exc:
        raise ToolkitError(str(exc)) from exc


def default_subplans(env: Mapping[str, str]) -> SubPlanRunner:
    """Inside a Kubernetes execution pod (``SHOAL_RUNTIME=kubernetes``) every worker is its own Job;
    elsewhere a nested local execution."""
    if env.get("SHOAL_RUNTIME") == "kubernetes":
        from shoal.execution._kubernetes import KubernetesSubPlans

        runner: SubPlanRunner = KubernetesSubPlans(env)
        return runner
    return LocalSubPlans(env)
