"""shoal.execution — runtimes (local processes; Kubernetes), the init program, the marker parser and
the toolkit. Every runtime implements ``Runtime`` (start / observe / wait / stop / attach) over a
compiled ``Plan``; what it learns about steps comes from the init program's markers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shoal._lazy import lazy_exports

if TYPE_CHECKING:
    from shoal.execution._initgen import init_files
    from shoal.execution._kubernetes import KubernetesOptions, KubernetesRuntime, render_execution
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
    "KubernetesOptions",
    "KubernetesRuntime",
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
    "render_execution",
    "run_plan",
    "shoal_home",
]

# Public name -> the private module that defines it; imported on first use (PEP 562) so that
# importing one submodule does not pay for the whole package.
_EXPORTS: dict[str, str] = {
    "init_files": "shoal.execution._initgen",
    "KubernetesOptions": "shoal.execution._kubernetes",
    "KubernetesRuntime": "shoal.execution._kubernetes",
    "render_execution": "shoal.execution._kubernetes",
    "EventLog": "shoal.execution._local",
    "LocalRuntime": "shoal.execution._local",
    "PreparationError": "shoal.execution._local",
    "Workspace": "shoal.execution._local",
    "execution_document": "shoal.execution._local",
    "read_events": "shoal.execution._local",
    "record_failed_execution": "shoal.execution._local",
    "run_plan": "shoal.execution._local",
    "shoal_home": "shoal.execution._local",
    "MarkerParser": "shoal.execution._logparse",
    "format_marker": "shoal.execution._markers",
    "ExecutionError": "shoal.execution._runtime",
    "ExecutionHandle": "shoal.execution._runtime",
    "ExecutionJob": "shoal.execution._runtime",
    "ExecutionOutcome": "shoal.execution._runtime",
    "Runtime": "shoal.execution._runtime",
    "Isolation": "shoal.execution._sandbox",
    "Mount": "shoal.execution._sandbox",
    "Sandbox": "shoal.execution._sandbox",
    "SandboxChoice": "shoal.execution._sandbox",
    "SandboxError": "shoal.execution._sandbox",
    "SandboxSpec": "shoal.execution._sandbox",
    "choose_sandbox": "shoal.execution._sandbox",
    "find_busybox": "shoal.execution._sandbox",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__, globals())
