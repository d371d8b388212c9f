"""Sub-plans (parallel workers, service instances, child executions) and the two seams they go through.

``InstanceSource`` turns a toolkit stage into instances (the compiler does the count/matrix/shards
arithmetic and compiles each instance's Plan); ``SubPlanRunner`` runs one sub-plan to its end as a
local process group with its own workspace (the local runtime). Both are injected, so tests and other
runtimes can provide their own.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shoal.workflow._plan import Plan

from ._context import ToolkitError, ToolkitRun

LineSink = Callable[[str], None]


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

    def run(self, job: SubJob, on_line: LineSink, cancel: threading.Event) -> str:
        """Run to the end (or until ``cancel``); the final execution status."""
        ...


# --------------------------------------------------------------------------- the compiler seam


def env_machine(env: Mapping[str, str]) -> Any:
    """An expression machine answering ``env`` and ``env.NAME`` from the toolkit's environment."""
    from shoal.workflow._expressions._machine import Machine

    variables: dict[str, Any] = {"env": dict(env)}
    variables.update({f"env.{k}": v for k, v in env.items()})
    return Machine(variables=variables)


def _compiler(name: str) -> Callable[..., Any]:
    module = importlib.import_module("shoal.workflow")
    fn = getattr(module, name, None)
    if fn is None:
        raise ToolkitError(f"shoal.workflow.{name} is not available: this build cannot expand instances")
    return fn  # type: ignore[no-any-return]


class CompilerInstances:
    """Instances from the compiler: ``expand_instances`` (the count/matrix/shards arithmetic, instance
    variables bound into each spec) and ``compile_worker`` / ``compile_service_instance``."""

    def workers(self, run: ToolkitRun) -> list[Instance]:
        specs = _compiler("expand_instances")(run.spec, env_machine(run.env))
        compile_worker = _compiler("compile_worker")
        return [
            Instance(index=i, spec=dict(spec), plan=compile_worker(run.plan, run.ref, i))
            for i, spec in enumerate(specs)
        ]

    def services(self, run: ToolkitRun, name: str) -> list[Instance]:
        spec = (run.spec.get("services") or {}).get(name)
        if spec is None:
            raise ToolkitError(f"stage {run.ref} has no service {name!r}")
        specs = _compiler("expand_instances")(spec, env_machine(run.env))
        compile_service = _compiler("compile_service_instance")
        return [
            Instance(index=i, spec=dict(s), plan=compile_service(run.plan, run.ref, name, i))
            for i, s in enumerate(specs)
        ]


# --------------------------------------------------------------------------- the runtime seam


class LocalSubPlans:
    """Sub-plans as local executions (``shoal.execution._local``), configured like the parent."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def prepare(self, job: SubJob) -> Mounts:
        from shoal.execution._local import Workspace

        ws = Workspace.create(job.workspace)
        return Mounts({"/data": ws.data, "/tmp": ws.tmp, "/testkube": ws.testkube})

    def run(self, job: SubJob, on_line: LineSink, cancel: threading.Event) -> str:
        from shoal.execution._local import LocalRuntime, run_plan
        from shoal.execution._runtime import ExecutionJob

        def on_event(event: Any) -> None:
            if event.type == "log" and event.line is not None:
                on_line(event.line)

        outcome = run_plan(
            ExecutionJob(
                execution_id=job.execution_id, plan=job.plan, secrets=job.secrets, workspace=job.workspace
            ),
            runtime=LocalRuntime.from_env(self.env),
            on_event=on_event,
            cancel=cancel,
        )
        return outcome.status


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
    if source is None:
        return True
    if isinstance(source, bool):
        return source
    text = str(source).strip()
    simple = {
        "always": True,
        "true": True,
        "never": False,
        "false": False,
        "passed": status == "passed",
        "success": status == "passed",
        "failed": status != "passed",
        "error": status != "passed",
    }
    if text in simple:
        return simple[text]
    from shoal.workflow._expressions._machine import Machine, resolve_expression
    from shoal.workflow._expressions._parse import compile_expression
    from shoal.workflow._expressions._values import is_truthy

    ok = status == "passed"
    machine = Machine(
        variables={
            "status": status,
            "passed": ok,
            "success": ok,
            "failed": not ok,
            "error": not ok,
            "always": True,
            "never": False,
        }
    )
    try:
        node = resolve_expression(compile_expression(text), (machine,), True)
        return bool(is_truthy(node.value()))
    except Exception as exc:
        raise ToolkitError(f"logs condition {text!r}: {exc}") from exc
