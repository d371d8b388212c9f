"""A scripted Runtime for agent/server tests: emits the same event shapes as the local runtime.

Each step of the plan's signature prints ``lines`` numbered log lines, then passes (or fails when its
name starts with ``fail``). ``gate`` lets a test hold an execution after its first step starts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.execution import ExecutionHandle, ExecutionJob, ExecutionOutcome
from shoal.workflow._status import INIT_REF, ExecutionEvent, ExecutionState


@dataclass
class _Run:
    job: ExecutionJob
    events: list[ExecutionEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: bool = False
    task: asyncio.Task[None] | None = None


class ScriptedRuntime:
    def __init__(
        self,
        lines: int = 3,
        gate: asyncio.Event | None = None,
        artifacts_root: Path | None = None,
        fail_steps: frozenset[str] = frozenset(),
    ) -> None:
        self.fail_steps = fail_steps
        self.lines = lines
        self.gate = gate
        self.artifacts_root = artifacts_root
        self.runs: dict[str, _Run] = {}
        self.started: list[str] = []

    def _emit(self, run: _Run, type_: str, **fields: Any) -> None:
        event = ExecutionEvent(seq=len(run.events) + 1, ts=int(time.time() * 1000), type=type_, **fields)  # type: ignore[arg-type]
        run.events.append(event)
        run.changed.set()

    async def _play(self, run: _Run) -> None:
        plan = run.job.plan
        self._emit(run, "status", status="running")
        self._emit(run, "initialization", ref=INIT_REF, status="running")
        self._emit(run, "initialization", ref=INIT_REF, status="passed")
        failed = False
        for index, node in enumerate(plan.signature):
            self._emit(run, "step", ref=node.ref, status="running")
            if index == 0 and self.gate is not None:
                await self.gate.wait()
            if run.stopped:
                self._emit(
                    run, "step", ref=node.ref, status="aborted", details="The execution has been aborted."
                )
                self._emit(run, "status", status="aborted", details="aborted")
                run.done.set()
                return
            for i in range(1, self.lines + 1):
                self._emit(run, "log", ref=node.ref, line=f"{node.name} line {i}")
                if i % 1000 == 0:
                    await asyncio.sleep(0)
            status = "failed" if node.name.startswith("fail") or node.name in self.fail_steps else "passed"
            failed = failed or status == "failed"
            self._emit(run, "step", ref=node.ref, status=status, exit_code=1 if status == "failed" else 0)
        self._emit(run, "status", status="failed" if failed else "passed")
        run.done.set()

    async def start(self, job: ExecutionJob) -> ExecutionHandle:
        run = _Run(job)
        self.runs[job.execution_id] = run
        self.started.append(job.execution_id)
        run.task = asyncio.create_task(self._play(run))
        return ExecutionHandle(job.execution_id, "memory", "scripted")

    async def observe(self, handle: ExecutionHandle, from_seq: int = 0) -> AsyncIterator[ExecutionEvent]:
        run = self.runs[handle.execution_id]
        index = max(0, from_seq - 1)
        while True:
            while index < len(run.events):
                yield run.events[index]
                index += 1
            if run.done.is_set() and index >= len(run.events):
                return
            run.changed.clear()
            if index < len(run.events):
                continue
            await run.changed.wait()

    async def wait(self, handle: ExecutionHandle) -> ExecutionOutcome:
        run = self.runs[handle.execution_id]
        await run.done.wait()
        state = ExecutionState.for_plan(run.job.plan)
        state.apply_all(run.events)
        execution: dict[str, Any] = {
            "id": handle.execution_id,
            "result": state.result().to_dict(),
            "artifacts": [],
        }
        if self.artifacts_root is not None:
            where = self.artifacts_root / handle.execution_id
            where.mkdir(parents=True, exist_ok=True)
            (where / "report.txt").write_text(f"report of {handle.execution_id}\n")
            execution["artifactsDir"] = str(where)
            execution["artifacts"] = [{"name": "report.txt", "size": (where / "report.txt").stat().st_size}]
        return ExecutionOutcome(state.status.value, execution)

    async def stop(self, handle: ExecutionHandle, *, grace: float = 5.0) -> None:
        run = self.runs[handle.execution_id]
        run.stopped = True
        if self.gate is not None:
            self.gate.set()

    async def attach(self, execution_id: str) -> ExecutionHandle | None:
        if execution_id in self.runs:
            return ExecutionHandle(execution_id, "memory", "scripted")
        return None
