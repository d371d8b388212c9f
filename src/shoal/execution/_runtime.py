"""The contract every runtime implements (local processes, Kubernetes): start an execution, observe
its seq-numbered events, stop it, re-attach to it after the runner died, and wait for its result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shoal.workflow._plan import Plan
from shoal.workflow._status import ExecutionEvent


class ExecutionError(Exception):
    """A runtime cannot start or re-attach to an execution (bad host, bad workspace, unknown id)."""


@dataclass(slots=True)
class ExecutionJob:
    """Everything a runtime needs to run one execution."""

    execution_id: str
    plan: Plan
    secrets: Mapping[str, str] = field(default_factory=dict)  # env name -> value; environment only
    config: Mapping[str, str] = field(default_factory=dict)  # config as given (recorded if not sensitive)
    workspace: Path | None = None  # None: the runtime's default place for this execution id
    resume_from: int = 0  # observers want events with seq >= resume_from
    name: str | None = None  # execution name; default "<workflow>-<number>"
    number: int = 1
    artifacts_dir: Path | None = None  # None: <workspace>/artifacts
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ExecutionHandle:
    """A started (or re-attached) execution; ``where`` is runtime-specific (workspace path, Job name)."""

    execution_id: str
    where: str
    runtime: str


@dataclass(slots=True)
class ExecutionOutcome:
    """The end of an execution: its final status and the TestWorkflowExecution-shaped document."""

    status: str
    execution: dict[str, Any]

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class Runtime(Protocol):
    """Start / observe / stop, plus re-attach. Implementations are async and may run many executions."""

    async def start(self, job: ExecutionJob) -> ExecutionHandle:
        """Prepare and launch the execution; returns once it is running (or already failed)."""
        ...

    def observe(self, handle: ExecutionHandle, from_seq: int = 0) -> AsyncIterator[ExecutionEvent]:
        """Every event with seq >= from_seq: what is stored first, then live ones until the end."""
        ...

    async def wait(self, handle: ExecutionHandle) -> ExecutionOutcome:
        """Block until the execution is finished; its final result."""
        ...

    async def stop(self, handle: ExecutionHandle, *, grace: float = 5.0) -> None:
        """Abort: SIGTERM (or delete) everything it runs, SIGKILL after ``grace`` seconds."""
        ...

    async def attach(self, execution_id: str) -> ExecutionHandle | None:
        """Re-attach to an execution a previous runner started; None when it does not exist here."""
        ...
