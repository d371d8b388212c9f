"""Helpers for the toolkit tests: a one-stage Plan on disk and a way to run the toolkit in-process."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.execution._toolkit.__main__ import main
from shoal.execution._toolkit._context import ToolkitRun, load_run
from shoal.workflow._plan import EnvVar, Plan, Stage

MARKER = "\x01\x05"


@dataclass
class Result:
    code: int
    output: str
    markers: list[tuple[str, str, Any]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(line for line in self.output.splitlines() if MARKER not in line)

    def named(self, name: str) -> list[Any]:
        return [value for _, n, value in self.markers if n == name]


def parse_markers(output: str) -> list[tuple[str, str, Any]]:
    found: list[tuple[str, str, Any]] = []
    for line in output.splitlines():
        start = line.find(MARKER)
        if start < 0:
            continue
        body = line[start + 2 :].lstrip("\x06").rstrip("\x03")
        ref, _, rest = body.partition("\x03")
        name, _, value = rest.partition("\x04")
        found.append((ref, name, json.loads(value) if value else None))
    return found


def one_stage_plan(
    kind: str, spec: dict[str, Any], ref: str = "rstage", env: list[EnvVar] | None = None
) -> Plan:
    return Plan(
        workflow="wf",
        root="root",
        stages={
            "root": Stage(ref="root", kind="group", children=[ref]),
            ref: Stage(ref=ref, kind=kind, parent="root", spec=spec, env=env or []),  # type: ignore[arg-type]
        },
        signature=[],
        containers=[],
    )


@dataclass
class Execution:
    """A fake execution directory: SHOAL_DIR with plan.json, a data dir and an artifacts dir."""

    root: Path

    @property
    def shoal_dir(self) -> Path:
        return self.root / "shoal"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {
            "SHOAL_DIR": str(self.shoal_dir),
            "SHOAL_DATA": str(self.data),
            "SHOAL_ARTIFACTS": str(self.artifacts),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.root),
        }
        env.update(extra or {})
        return env

    def load(
        self, kind: str, spec: dict[str, Any], *, env: dict[str, str] | None = None
    ) -> tuple[ToolkitRun, io.StringIO]:
        """A ToolkitRun for a one-stage plan, printing into the returned buffer."""
        plan = one_stage_plan(kind, spec)
        (self.shoal_dir / "plan.json").write_text(json.dumps(plan.to_dict()))
        out = io.StringIO()
        return load_run(kind, "rstage", self.env(env), self.data, out), out

    def load_plan(
        self, plan: Plan, kind: str, ref: str, *, env: dict[str, str] | None = None
    ) -> tuple[ToolkitRun, io.StringIO]:
        (self.shoal_dir / "plan.json").write_text(json.dumps(plan.to_dict()))
        out = io.StringIO()
        return load_run(kind, ref, self.env(env), self.data, out), out

    def call(
        self,
        fn: Callable[..., int],
        kind: str,
        spec: dict[str, Any],
        *args: Any,
        env: dict[str, str] | None = None,
    ) -> Result:
        """Run an operation function with injected seams."""
        run, out = self.load(kind, spec, env=env)
        code = fn(run, *args)
        text = out.getvalue()
        return Result(code=code, output=text, markers=parse_markers(text))

    def run(
        self,
        kind: str,
        spec: dict[str, Any],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        plan: Plan | None = None,
        ref: str = "rstage",
    ) -> Result:
        plan = plan or one_stage_plan(kind, spec, ref)
        (self.shoal_dir / "plan.json").write_text(json.dumps(plan.to_dict()))
        out = io.StringIO()
        code = main([kind, ref], env=self.env(env), cwd=cwd or self.data, out=out)
        text = out.getvalue()
        return Result(code=code, output=text, markers=parse_markers(text))


RunFn = Callable[..., Result]
