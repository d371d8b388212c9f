"""Test doubles for the two seams of sub-plans: instances from scripts, and a runner that runs the
``shell`` stages of a sub-plan directly with ``sh`` in the worker's data directory."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Any

from shoal.execution._toolkit._context import ToolkitRun
from shoal.execution._toolkit._subplans import Instance, LineSink, Mounts, RecordSink, SubJob
from shoal.workflow._plan import Plan, Stage


def shell_plan(script: str, env: dict[str, str] | None = None, paused: bool = False) -> Plan:
    from shoal.workflow._plan import EnvVar

    return Plan(
        workflow="sub",
        root="root",
        stages={
            "root": Stage(ref="root", kind="group", children=["s"]),
            "s": Stage(
                ref="s",
                kind="shell",
                parent="root",
                shell=script,
                paused=paused,
                env=[EnvVar(name=k, value=v) for k, v in (env or {}).items()],
            ),
        },
        signature=[],
        containers=[],
    )


@dataclass
class ScriptInstances:
    """Workers: one per script; services: ``services[name]`` scripts."""

    scripts: list[str] = field(default_factory=list)
    specs: list[dict[str, Any]] = field(default_factory=list)
    services_: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)

    def workers(self, run: ToolkitRun) -> list[Instance]:
        specs = self.specs or [dict(run.spec) for _ in self.scripts]
        return [
            Instance(i, {**run.spec, **specs[i]}, shell_plan(s, paused=bool(specs[i].get("paused"))))
            for i, s in enumerate(self.scripts)
        ]

    def services(self, run: ToolkitRun, name: str) -> list[Instance]:
        base = dict((run.spec.get("services") or {}).get(name) or {})
        return [
            Instance(i, {**base, **spec}, shell_plan(script))
            for i, (script, spec) in enumerate(self.services_[name])
        ]


class ShellRunner:
    def __init__(self) -> None:
        self.jobs: list[SubJob] = []
        self.lock = threading.Lock()
        self.resumed: dict[str, threading.Event] = {}
        self.events: list[str] = []  # "paused" / "started", in the order they happened

    def resume(self, job: SubJob) -> None:
        self._gate(job).set()

    def _gate(self, job: SubJob) -> threading.Event:
        with self.lock:
            return self.resumed.setdefault(job.execution_id, threading.Event())

    def prepare(self, job: SubJob) -> Mounts:
        paths = {m: job.workspace / m.strip("/") for m in ("/data", "/tmp", "/testkube")}
        for p in paths.values():
            p.mkdir(parents=True, exist_ok=True)
        return Mounts(paths)

    def run(
        self, job: SubJob, on_line: LineSink, cancel: threading.Event, on_record: RecordSink | None = None
    ) -> str:
        """A line ``ARTIFACT <name>`` stands for an artifact the sub-plan saved (size = len(name))."""

        def line(text: str) -> None:
            if text.startswith("ARTIFACT ") and on_record is not None:
                on_record("artifact", {"name": text[9:], "size": len(text[9:])})
            else:
                on_line(text)

        with self.lock:
            self.jobs.append(job)
        data = job.workspace / "data"
        for stage in job.plan.stages.values():
            if stage.kind != "shell":
                continue
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATA": str(data)}
            env.update({e.name: e.value or "" for e in stage.env})
            env.update(job.secrets)
            if stage.paused and on_record is not None:
                with self.lock:
                    self.events.append("paused")
                on_record("paused", {"ref": stage.ref})
                while not self._gate(job).wait(0.01):
                    if cancel.is_set():
                        return "aborted"
            with self.lock:
                self.events.append("started")
            if on_record is not None:
                on_record("started", {"ref": stage.ref})
            proc = subprocess.Popen(
                ["sh", "-c", stage.shell or ""],
                cwd=data,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )

            def pump(p: subprocess.Popen[str] = proc) -> None:
                assert p.stdout is not None
                for raw in p.stdout:
                    line(raw.rstrip("\n"))

            reader = threading.Thread(target=pump)
            reader.start()
            while proc.poll() is None:
                if cancel.wait(0.01):
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait()
                    reader.join()
                    return "aborted"
            reader.join()
            if proc.returncode != 0:
                return "failed"
        return "passed"
