"""Helpers of the local runtime tests: compile a workflow given as data and run it in a temp home."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from shoal.execution import ExecutionJob, ExecutionOutcome, LocalRuntime
from shoal.workflow import ExecutionContext, compile_workflow
from shoal.workflow._status import ExecutionEvent


def workflow(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "testworkflows.testkube.io/v1",
        "kind": "TestWorkflow",
        "metadata": {"name": name},
        "spec": spec,
    }


def job_for(
    spec: dict[str, Any], home: Path, *, name: str = "t", config: dict[str, str] | None = None
) -> ExecutionJob:
    context = ExecutionContext()
    compiled = compile_workflow(workflow(name, spec), {}, config=config or {}, context=context)
    return ExecutionJob(
        execution_id=context.id, plan=compiled.plan, secrets=compiled.secrets, config=config or {}
    )


def run(
    spec: dict[str, Any],
    home: Path,
    *,
    config: dict[str, str] | None = None,
    runtime: LocalRuntime | None = None,
) -> tuple[ExecutionOutcome, list[ExecutionEvent]]:
    rt = runtime or LocalRuntime(home, kill_grace=1.0)
    job = job_for(spec, home, config=config)

    async def main() -> tuple[ExecutionOutcome, list[ExecutionEvent]]:
        handle = await rt.start(job)
        events = [e async for e in rt.observe(handle)]
        return await rt.wait(handle), events

    return asyncio.run(main())


def steps_by_name(outcome: ExecutionOutcome) -> dict[str, dict[str, Any]]:
    """Top-level step results keyed by step name."""
    doc = outcome.execution
    return {n["name"]: doc["result"]["steps"][n["ref"]] for n in doc["signature"]}


def logs(events: list[ExecutionEvent]) -> list[str]:
    return [e.line or "" for e in events if e.type == "log"]
