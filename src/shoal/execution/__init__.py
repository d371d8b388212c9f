"""shoal.execution — runtimes (local processes; Kubernetes), the init program, the marker parser and
the toolkit. Every runtime implements ``Runtime`` (start / observe / wait / stop / attach) over a
compiled ``Plan``; what it learns about steps comes from the init program's markers.
"""

from shoal.execution._initgen import init_files
from shoal.execution._local import (
    EventLog,
    LocalRuntime,
    PreparationError,
    Workspace,
    execution_document,
    read_events,
    record_failed_execution,
    run_plan,
    shoal_home,
)
from shoal.execution._logparse import MarkerParser
from shoal.execution._markers import format_marker
from shoal.execution._runtime import (
    ExecutionError,
    ExecutionHandle,
    ExecutionJob,
    ExecutionOutcome,
    Runtime,
)
from shoal.execution._sandbox import (
    Isolation,
    Mount,
    Sandbox,
    SandboxChoice,
    SandboxError,
    SandboxSpec,
    choose_sandbox,
    find_busybox,
)

__all__ = [
    "EventLog",
    "ExecutionError",
    "ExecutionHandle",
    "ExecutionJob",
    "ExecutionOutcome",
    "Isolation",
    "LocalRuntime",
    "MarkerParser",
    "Mount",
    "PreparationError",
    "Runtime",
    "Sandbox",
    "SandboxChoice",
    "SandboxError",
    "SandboxSpec",
    "Workspace",
    "choose_sandbox",
    "execution_document",
    "find_busybox",
    "format_marker",
    "init_files",
    "read_events",
    "record_failed_execution",
    "run_plan",
    "shoal_home",
]
