"""``shoal run FILE``: run a workflow locally, no server, and print its logs and result.

Exit codes: 0 the execution passed, 1 it failed or was aborted, 2 the input is invalid.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import typer

if TYPE_CHECKING:  # the runtime, the workflow language and Rich are imported when a run starts
    from rich.console import Console

    from shoal.execution import ExecutionJob, LocalRuntime, SandboxChoice
    from shoal.workflow._plan import SignatureNode
    from shoal.workflow._status import ExecutionEvent

# `shoal run tw NAME` (and Testkube's spellings) runs a stored workflow through the control plane.
REMOTE_KINDS = frozenset({"tw", "testworkflow", "testworkflows"})

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


class Output(StrEnum):
    pretty = "pretty"
    json = "json"


class IsolationOption(StrEnum):
    default = "default"
    strict = "strict"


class SandboxOption(StrEnum):
    auto = "auto"
    bwrap = "bwrap"
    unshare = "unshare"
    none = "none"


_SANDBOXES: dict[SandboxOption, SandboxChoice] = {
    SandboxOption.auto: "auto",
    SandboxOption.bwrap: "bwrap",
    SandboxOption.unshare: "unshare",
    SandboxOption.none: "none",
}


class _InvalidInput(Exception):
    """Bad command-line input (not a workflow problem): printed as is, exit 2."""


def register(app: typer.Typer) -> None:
    app.command(
        "run",
        help="Run a workflow: a FILE locally (no server, no cluster, no Docker), or `tw NAME` stored in the "
        "control plane on the agents it targets.",
    )(run_command)


def run_command(
    file: Path | None = typer.Argument(
        None,
        metavar="FILE | tw NAME",
        help="A YAML file to run locally; or `tw NAME` (testworkflow, testworkflows) to run a stored "
        "workflow through the control plane.",
    ),
    remote_name: str | None = typer.Argument(None, hidden=True),
    name: str | None = typer.Option(
        None, "--name", "-n", help="The workflow to run when FILE holds several."
    ),
    config: list[str] = typer.Option([], "--config", "-c", help="A config value, KEY=VALUE (repeatable)."),
    output: Output = typer.Option(
        Output.pretty,
        "--output",
        "-o",
        help="pretty: logs and a summary; json: logs on stderr, the final execution on stdout.",
    ),
    artifacts_dir: Path | None = typer.Option(
        None, "--artifacts-dir", help="Where collected artifacts go (default: the execution's workspace)."
    ),
    templates: list[Path] = typer.Option(
        [], "--templates", "-t", help="Extra files or directories with TestWorkflowTemplates (repeatable)."
    ),
    isolation: IsolationOption = typer.Option(
        IsolationOption.default, "--isolation", help="strict: the host is read-only and there is no network."
    ),
    sandbox: SandboxOption = typer.Option(
        SandboxOption.auto,
        "--sandbox",
        help="How steps get their private mounts: bubblewrap, unshare, or none (no /data, /tmp...).",
    ),
    attach: str | None = typer.Option(
        None,
        "--attach",
        help="Re-attach to an execution by id (after its runner died): finalise it and print its result.",
    ),
    target: list[str] = typer.Option([], "--target", help="tw: run on agents with k=v1,v2 (repeatable)."),
    target_not: list[str] = typer.Option([], "--target-not", help="tw: not on agents with k=v."),
    target_replicate: list[str] = typer.Option(
        [], "--target-replicate", help="tw: one execution per distinct value of this agent label."
    ),
    follow: bool = typer.Option(
        False, "--follow", "--watch", "-f", help="tw: stream logs; exit 0 only if passed."
    ),
    server: str | None = typer.Option(None, "--server", envvar="SHOAL_SERVER", help="tw: control plane URL."),
    token: str | None = typer.Option(None, "--token", envvar="SHOAL_TOKEN", help="tw: API token."),
    env: str | None = typer.Option(None, "--env", envvar="SHOAL_ENV", help="tw: environment."),
) -> None:
    if file is not None and str(file) in REMOTE_KINDS:
        if remote_name is None:
            sys.stderr.write(f"shoal run: `run {file}` needs the workflow name: shoal run {file} NAME\n")
            raise typer.Exit(EXIT_INVALID)
        from shoal.cli._client_cmds import run_remote

        run_remote(
            remote_name,
            config,
            target,
            target_not,
            target_replicate,
            follow,
            "json" if output is Output.json else "table",
            server,
            token,
            env,
        )
        return
    if remote_name is not None or target or target_not or target_replicate:
        sys.stderr.write("shoal run: --target options and a second argument are for `shoal run tw NAME`\n")
        raise typer.Exit(EXIT_INVALID)
    from rich.console import Console

    from shoal.execution import ExecutionError
    from shoal.workflow import WorkflowError

    console = Console(file=sys.stdout if output is Output.pretty else sys.stderr, highlight=False)
    try:
        code = _run(
            file=file,
            name=name,
            config=config,
            output=output,
            artifacts_dir=artifacts_dir,
            templates=templates,
            isolation=isolation,
            sandbox=sandbox,
            attach=attach,
            console=console,
        )
    except _InvalidInput as exc:
        sys.stderr.write(f"shoal run: {exc}\n")
        code = EXIT_INVALID
    except WorkflowError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        code = EXIT_INVALID
    except ExecutionError as exc:
        sys.stderr.write(f"shoal run: {exc}\n")
        code = EXIT_FAILED
    raise typer.Exit(code)


def _run(
    *,
    file: Path | None,
    name: str | None,
    config: Sequence[str],
    output: Output,
    artifacts_dir: Path | None,
    templates: Sequence[Path],
    isolation: IsolationOption,
    sandbox: SandboxOption,
    attach: str | None,
    console: Console,
) -> int:
    import asyncio

    from shoal.execution import ExecutionJob, LocalRuntime, record_failed_execution
    from shoal.workflow import ExecutionContext, ResolutionError, compile_workflow, load_bundle

    runtime = LocalRuntime(
        isolation="strict" if isolation is IsolationOption.strict else "default",
        sandbox=_SANDBOXES[sandbox],
    )
    if attach is not None:
        if file is not None:
            raise _InvalidInput("give either FILE or --attach ID, not both")
        return asyncio.run(_attach(runtime, attach, output, console))
    if file is None:
        raise _InvalidInput("missing FILE (a workflow YAML file), or --attach ID")
    values = _parse_config(config)
    workflow = load_bundle([file]).workflow(name)
    templates_bundle = load_bundle([file, *templates]) if templates else None
    template_docs = (templates_bundle or load_bundle([file])).templates
    workflow_name = str(workflow.name)
    number = _next_number(runtime.home, workflow_name)
    context = ExecutionContext(number=number)
    try:
        compiled = compile_workflow(workflow, template_docs, config=values, context=context)
    except ResolutionError as exc:
        message = "; ".join(p.message if not p.path else f"{p.path}: {p.message}" for p in exc.problems)
        doc = record_failed_execution(
            runtime.home, context.id, workflow_name, message, number=number, config=values
        )
        _print_final(doc, output, console, None)
        return EXIT_FAILED
    job = ExecutionJob(
        execution_id=context.id,
        plan=compiled.plan,
        secrets=dict(compiled.secrets),
        config=values,
        name=context.name or f"{workflow_name}-{number}",
        number=number,
        artifacts_dir=artifacts_dir.resolve() if artifacts_dir else None,
    )
    return asyncio.run(_execute(runtime, job, output, console))


# ------------------------------------------------------------------------------------------ input


def _parse_config(items: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _InvalidInput(f"--config {item!r}: expected KEY=VALUE")
        values[key] = value
    return values


def _next_number(home: Path, workflow: str) -> int:
    """Per-workflow execution number (``<workflow>-<number>``), counted in ``$SHOAL_HOME/numbers``."""
    folder = home / "numbers"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / workflow.replace("/", "_")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.read(fd, 32).decode().strip()
        number = (int(raw) if raw.isdigit() else 0) + 1
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(number).encode())
        return number
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------ running


async def _execute(runtime: LocalRuntime, job: ExecutionJob, output: Output, console: Console) -> int:
    import asyncio
    import signal

    handle = await runtime.start(job)
    loop = asyncio.get_running_loop()
    stops: list[asyncio.Task[None]] = []

    def request_stop() -> None:
        if not stops:
            console.print("[yellow]stopping: aborting the execution…[/]")
            stops.append(loop.create_task(runtime.stop(handle)))

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop)
    printer = _Printer(job.plan.signature, output, console)
    printer.begin(job.name or job.execution_id, job.execution_id, [c.image for c in job.plan.containers])
    async for batch in runtime.observe_batches(handle):
        printer.batch(batch)
    outcome = await runtime.wait(handle)
    for task in stops:
        await task
    _print_final(outcome.execution, output, console, printer)
    return EXIT_PASSED if outcome.passed else EXIT_FAILED


async def _attach(runtime: LocalRuntime, execution_id: str, output: Output, console: Console) -> int:
    from shoal.workflow._plan import Plan

    handle = await runtime.attach(execution_id)
    if handle is None:
        raise _InvalidInput(f"no execution {execution_id} in {runtime.home / 'executions'}")
    record = runtime.workspace(execution_id).read_json(runtime.workspace(execution_id).plan_file)
    signature = Plan.from_dict(record).signature if record else []
    printer = _Printer(signature, output, console)
    printer.begin(execution_id, execution_id)
    async for batch in runtime.observe_batches(handle):
        printer.batch(batch)
    outcome = await runtime.wait(handle)
    _print_final(outcome.execution, output, console, printer)
    return EXIT_PASSED if outcome.passed else EXIT_FAILED


# ------------------------------------------------------------------------------------------ printing

_STATUS_STYLE = {
    "passed": "green",
    "failed": "red",
    "timeout": "red",
    "aborted": "red",
    "canceled": "yellow",
    "skipped": "dim",
    "running": "cyan",
}


class _Printer:
    """Streams logs under per-step headers (pretty), or plain log lines (json mode, on stderr)."""

    def __init__(self, signature: Sequence[SignatureNode], output: Output, console: Console) -> None:
        from shoal.workflow._status import INIT_REF, format_duration

        self.init_ref = INIT_REF
        self.format_duration = format_duration
        self.output = output
        self.console = console
        self.names: dict[str, str] = {}
        self.depth: dict[str, int] = {}
        self.started: dict[str, int] = {}
        self.out: TextIO = sys.stdout if output is Output.pretty else sys.stderr

        def walk(nodes: Sequence[SignatureNode], depth: int) -> None:
            for node in nodes:
                self.names[node.ref] = node.name or node.category or node.ref
                self.depth[node.ref] = depth
                walk(node.children, depth + 1)

        walk(signature, 0)

    def begin(self, name: str, execution_id: str, images: Sequence[str] = ()) -> None:
        if self.output is Output.pretty:
            self.console.print(f"[bold]Execution[/] {name} [dim]({execution_id})[/]")
            if images:
                listed = ", ".join(dict.fromkeys(images))
                self.console.print(f"[dim]images (recorded, not pulled: steps run host tools): {listed}[/]")

    def batch(self, events: Sequence[ExecutionEvent]) -> None:
        lines: list[str] = []
        for event in events:
            if event.type == "log":
                lines.append(event.line or "")
                continue
            if lines:
                self.out.write("\n".join(lines) + "\n")
                lines.clear()
            self.event(event)
        if lines:
            self.out.write("\n".join(lines) + "\n")

    def event(self, event: ExecutionEvent) -> None:
        if event.type == "log":
            self.out.write((event.line or "") + "\n")
            return
        if self.output is not Output.pretty:
            if event.type == "initialization" and event.details:
                self.out.write(f"initialization: {event.details}\n")
            return
        self.out.flush()
        if event.type == "step" and event.ref in self.names and event.status is not None:
            self._step(event)
        elif event.type == "initialization" and event.ref == self.init_ref and event.status == "failed":
            self.console.print(f"[red]✗ initialization failed:[/] {event.details or ''}")
        elif event.type == "status" and event.status in ("aborted", "canceled") and event.details:
            self.console.print(f"[yellow]! {event.details}[/]")

    def _step(self, event: ExecutionEvent) -> None:
        ref = event.ref or ""
        indent = "  " * self.depth.get(ref, 0)
        name = self.names.get(ref, ref)
        status = event.status or ""
        if status == "running":
            if ref not in self.started:
                self.started[ref] = event.ts
                self.console.print(f"{indent}[bold cyan]▶ {name}[/]")
            return
        if status == "paused":
            self.console.print(f"{indent}[yellow]⏸ {name} paused[/]")
            return
        style = _STATUS_STYLE.get(status, "white")
        took = ""
        if ref in self.started:
            took = f" in {self.format_duration(max(0, event.ts - self.started[ref]))}"
        self.console.print(f"{indent}[{style}]■ {name}: {status}{took}[/]")


def _print_final(doc: dict[str, Any], output: Output, console: Console, printer: _Printer | None) -> None:
    if output is Output.json:
        sys.stderr.flush()
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        sys.stdout.flush()
        return
    sys.stdout.flush()
    from rich.table import Table

    result = doc.get("result") or {}
    names = printer.names if printer else {}
    depth = printer.depth if printer else {}
    table = Table(title=f"{doc.get('name', '')} ({doc.get('id', '')})", title_justify="left")
    table.add_column("step")
    table.add_column("status")
    table.add_column("exit", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("error")
    init = result.get("initialization") or {}
    if init.get("errorMessage"):
        table.add_row("initialization", _styled(init.get("status", "")), "", "", init["errorMessage"])
    for ref, step in (result.get("steps") or {}).items():
        label = "  " * depth.get(ref, 0) + names.get(ref, ref)
        table.add_row(
            label,
            _styled(str(step.get("status", ""))),
            "" if step.get("exitCode") is None else str(step["exitCode"]),
            _duration(step),
            str(step.get("errorMessage", "")),
        )
    console.print(table)
    artifacts = doc.get("artifacts") or []
    if artifacts:
        console.print(f"artifacts ({len(artifacts)}) in {doc.get('artifactsDir', '')}")
    status = str(result.get("status", ""))
    console.print(
        f"[bold]{_styled(status)}[/] in {result.get('duration', '0s')}"
        + (f" — {init['errorMessage']}" if init.get("errorMessage") else "")
    )


def _styled(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _duration(step: dict[str, Any]) -> str:
    start, end = step.get("startedAt"), step.get("finishedAt")
    if not start or not end:
        return ""
    from shoal.workflow._status import format_duration, parse_timestamp

    return format_duration(max(0, parse_timestamp(end) - parse_timestamp(start)))
