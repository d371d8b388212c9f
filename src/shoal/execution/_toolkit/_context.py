"""What one toolkit invocation knows: its stage, the Plan, the environment, paths and the marker channel.

The init program runs ``"$SHOAL_TOOLKIT" <kind> <ref>`` with the stage's env and working dir. Everything
the operations need is derived here once, so each operation module stays a plain function of a
``ToolkitRun``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from shoal.execution._markers import format_marker as _format_marker_bytes
from shoal.workflow._plan import Plan, Stage


class ToolkitError(Exception):
    """An operation could not be carried out; the message is printed and the stage fails."""


# Toolkit marker names (init protocol: the event parser maps them to outputs, reports and artifacts).
ARTIFACT = "artifact"  # {"name": relpath, "size": bytes}
REPORT = "report"  # {"kind": "junit", "file": relpath, "summary": {...}}
SERVICE = "service"  # {"name", "index", "ip", "port", "status"}
PARALLEL = "parallel"  # {"index", "status", ...}
EXECUTE = "execute"  # {"index", "workflow", "id", "status"}


def format_marker(ref: str, name: str, value: Any) -> str:
    """One marker line as text (the init protocol's encoder, decoded)."""
    return _format_marker_bytes(ref, name, value).decode("utf-8")


@dataclass(frozen=True, slots=True)
class PathMap:
    """Maps the paths a workflow names (``/data/repo``) onto the host paths the runtime gave.

    ``mounts`` maps a virtual mount point to its host directory. On Kubernetes (or inside bubblewrap)
    the mapping is the identity; the local runtime without isolation points ``/data`` at the
    execution's data directory. A path outside every mount is used as it is.
    """

    mounts: Mapping[str, str]

    def to_host(self, path: str, base: Path) -> Path:
        if not path.startswith("/"):
            return Path(os.path.normpath(base / path))
        norm = str(PurePosixPath(os.path.normpath(path)))
        for virtual in sorted(self.mounts, key=len, reverse=True):
            v = virtual.rstrip("/") or "/"
            if norm == v or norm.startswith(v + "/"):
                rest = norm[len(v) :].lstrip("/")
                host = Path(self.mounts[virtual])
                return host / rest if rest else host
        return Path(norm)

    def host_roots(self) -> list[Path]:
        return [Path(h) for h in self.mounts.values()]


@dataclass(slots=True)
class ToolkitRun:
    """One invocation of the toolkit for one stage."""

    kind: str
    ref: str
    stage: Stage
    plan: Plan
    env: dict[str, str]
    cwd: Path
    shoal_dir: Path
    paths: PathMap
    artifacts_dir: Path
    out: TextIO = field(default_factory=lambda: sys.stdout)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def spec(self) -> dict[str, Any]:
        return self.stage.spec

    @property
    def state_dir(self) -> Path:
        return self.shoal_dir / "state"

    def log(self, message: str) -> None:
        with self._lock:
            self.out.write(message.rstrip("\n") + "\n")
            self.out.flush()

    def write_raw(self, text: str) -> None:
        with self._lock:
            self.out.write(text)
            self.out.flush()

    def emit(self, name: str, value: Any) -> None:
        with self._lock:
            self.out.write(format_marker(self.ref, name, value))
            self.out.flush()

    def host_path(self, path: str, base: Path | None = None) -> Path:
        return self.paths.to_host(path, self.cwd if base is None else base)

    def runtime_variables(self) -> dict[str, Any]:
        """What a ``{{ }}`` left in a spec may use at run time: ``env``, ``services`` published by
        earlier stages, ``step.<id>.outputs`` recorded by the init program."""
        variables: dict[str, Any] = {"env": dict(self.env)}
        variables.update({f"env.{k}": v for k, v in self.env.items()})
        try:
            services = json.loads((self.state_dir / "services.json").read_text())
        except (OSError, ValueError):
            services = {}
        if isinstance(services, dict):
            variables["services"] = services
            for name, instances in services.items():
                for i, info in enumerate(instances if isinstance(instances, list) else []):
                    for key, value in (info or {}).items():
                        variables[f"services.{name}.{i}.{key}"] = value
        outputs = self.state_dir / "outputs"
        if outputs.is_dir():
            for step_dir in sorted(outputs.iterdir()):
                for item in sorted(step_dir.iterdir()) if step_dir.is_dir() else []:
                    if item.is_file():
                        text = item.read_text(encoding="utf-8", errors="replace").strip()
                        variables[f"step.{step_dir.name}.outputs.{item.name}"] = text
        return variables

    def resolved(self, value: Any) -> Any:
        """``value`` with its run-time ``{{ }}`` islands resolved (``file()``/``glob()`` from the cwd)."""
        from shoal.workflow._expressions._files import filesystem_machine

        from ._globs import DiskFileSystem

        return bind(value, self.runtime_variables(), filesystem_machine(DiskFileSystem(), str(self.cwd)))


def bind(value: Any, variables: Mapping[str, Any], *machines: Any) -> Any:
    """``value`` (a spec fragment) with every ``{{ }}`` template resolved against ``variables``."""
    if isinstance(value, str):
        if "{{" not in value:
            return value
        from shoal.workflow import Machine, compile_template, to_string

        try:
            expr = compile_template(value).resolve(Machine(variables=dict(variables)), *machines, final=True)
            return to_string(expr.value())
        except Exception as exc:
            raise ToolkitError(f"{value!r}: {getattr(exc, 'message', exc)}") from exc
    if isinstance(value, list):
        return [bind(v, variables, *machines) for v in value]
    if isinstance(value, dict):
        return {k: bind(v, variables, *machines) for k, v in value.items()}
    return value


def mounts_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """``SHOAL_MOUNTS`` (JSON object virtual -> host) wins; else ``/data`` -> ``$SHOAL_DATA``."""
    raw = env.get("SHOAL_MOUNTS")
    if raw:
        data = json.loads(raw)
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ToolkitError("SHOAL_MOUNTS must be a JSON object of mount point -> host directory")
        return dict(data)
    return {"/data": env.get("SHOAL_DATA", "/data")}


def load_run(kind: str, ref: str, env: Mapping[str, str], cwd: Path, out: TextIO) -> ToolkitRun:
    """Build the run from ``$SHOAL_DIR/plan.json`` and the process environment."""
    shoal_dir_s = env.get("SHOAL_DIR")
    if not shoal_dir_s:
        raise ToolkitError("SHOAL_DIR is not set: the toolkit runs only inside an execution")
    shoal_dir = Path(shoal_dir_s)
    plan_file = Path(env.get("SHOAL_PLAN") or shoal_dir / "plan.json")
    try:
        plan = Plan.from_dict(json.loads(plan_file.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ToolkitError(f"cannot read the plan {plan_file}: {exc}") from exc
    stage = plan.stages.get(ref)
    if stage is None:
        raise ToolkitError(f"the plan has no stage {ref!r}")
    if stage.kind != kind:
        raise ToolkitError(f"stage {ref!r} is a {stage.kind!r} stage, not {kind!r}")
    mounts = mounts_from_env(env)
    artifacts = env.get("SHOAL_ARTIFACTS") or str(shoal_dir / "artifacts")
    return ToolkitRun(
        kind=kind,
        ref=ref,
        stage=stage,
        plan=plan,
        env=dict(env),
        cwd=cwd,
        shoal_dir=shoal_dir,
        paths=PathMap(mounts),
        artifacts_dir=Path(artifacts),
        out=out,
    )
