"""Commands that talk to a control plane: context, env, token, apply, get, delete, logs, abort, artifacts.

Every command takes ``--server``/``--token``/``--env`` (or SHOAL_SERVER/SHOAL_TOKEN/SHOAL_ENV, or the
context saved by ``shoal context set`` under SHOAL_HOME). Errors print one clear line and exit 1.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from shoal.cli._lazy import LazyConsole

if TYPE_CHECKING:
    from shoal.client import Client

_F = TypeVar("_F", bound=Callable[..., Any])

KIND_ALIASES = {
    "tw": "tw",
    "testworkflow": "tw",
    "testworkflows": "tw",
    "twt": "twt",
    "testworkflowtemplate": "twt",
    "testworkflowtemplates": "twt",
    "twe": "twe",
    "tw-execution": "twe",
    "testworkflowexecution": "twe",
    "testworkflowexecutions": "twe",
    "execution": "twe",
    "executions": "twe",
    "agent": "agents",
    "agents": "agents",
    "env": "envs",
    "envs": "envs",
    "environment": "envs",
    "environments": "envs",
}
TERMINAL = ("passed", "failed", "aborted", "canceled")

# Tables are not cut to 80 columns when piped: ids and names stay whole for scripts.
err = LazyConsole(stderr=True)
out = LazyConsole(width=lambda: None if sys.stdout.isatty() else 250)


def shoal_home() -> Path:
    return Path(os.environ.get("SHOAL_HOME") or Path.home() / ".shoal")


def context_path() -> Path:
    return shoal_home() / "context.json"


def load_context() -> dict[str, str]:
    try:
        data = json.loads(context_path().read_text())
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def fail(message: str, problems: Sequence[str] = (), code: int = 1) -> typer.Exit:
    sys.stderr.write(f"shoal: {message}\n")
    for p in problems:
        sys.stderr.write(f"{p}\n")
    return typer.Exit(code)


ServerOpt = typer.Option(
    None, "--server", envvar="SHOAL_SERVER", help="Control plane URL (else the context)."
)
TokenOpt = typer.Option(None, "--token", envvar="SHOAL_TOKEN", help="API token (else the context).")
EnvOpt = typer.Option(
    None, "--env", envvar="SHOAL_ENV", help="Environment (default: the context's, or default)."
)
OutputOpt = typer.Option("table", "--output", "-o", help="table, json or yaml.")


@contextmanager
def connect(server: str | None, token: str | None, env: str | None) -> Iterator[Client]:
    ctx = load_context()
    server = server or ctx.get("server")
    token = token or ctx.get("token")
    if not server:
        raise fail("no server: pass --server URL, set SHOAL_SERVER, or run `shoal context set --server URL`")
    from shoal.client import Client, ClientError

    try:
        with Client(server, token, env or ctx.get("env") or "default") as client:
            yield client
    except ClientError as exc:
        raise fail(str(exc), exc.problems) from None


def emit(data: Any, output: str, columns: Sequence[tuple[str, Callable[[dict[str, Any]], Any]]]) -> None:
    if output == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    elif output == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    elif output == "table":
        from rich.table import Table

        rows = data if isinstance(data, list) else [data]
        table = Table(show_header=True, header_style="bold", box=None)
        for title, _ in columns:
            table.add_column(title)
        for row in rows:
            table.add_row(*("" if (v := get(row)) is None else str(v) for _, get in columns))
        out.print(table)
    else:
        raise fail(f"unknown output format {output!r}: expected table, json or yaml", code=2)


def parse_pairs(items: Sequence[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"{what} {item!r}: expected key=value", code=2)
        pairs[key] = value
    return pairs


def parse_targets(items: Sequence[str], what: str) -> dict[str, list[str]]:
    out_: dict[str, list[str]] = {}
    for key, value in parse_pairs(items, what).items():
        out_.setdefault(key, []).extend(v for v in value.split(",") if v)
    return out_


def _labels(row: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((row.get("labels") or {}).items()))


EXECUTION_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("ID", lambda r: r["id"]),
    ("NAME", lambda r: r["name"]),
    ("STATUS", lambda r: r["result"]["status"]),
    ("RUNNER", lambda r: r.get("runner")),
    ("GROUP", lambda r: r.get("groupId")),
    ("SCHEDULED", lambda r: r.get("scheduledAt")),
    ("DURATION", lambda r: r["result"].get("duration")),
]


def _step_names(signature: Sequence[dict[str, Any]]) -> dict[str, str]:
    names: dict[str, str] = {}
    stack = list(signature)
    while stack:
        node = stack.pop()
        names[str(node.get("ref"))] = str(node.get("name") or node.get("category") or node.get("ref"))
        stack.extend(node.get("children") or [])
    return names


QUEUE_POLL_S = 1.0


def _say_why_queued(client: Client, execution_id: str, started: threading.Event) -> None:
    """While the execution waits to be taken, say why (and again when the reason changes): a run that
    no agent can take must not look like a hang."""
    said = ""
    while not started.is_set():
        try:
            doc = client.execution(execution_id)
        except Exception:  # the follow itself reports a lost server
            return
        status = str((doc.get("result") or {}).get("status") or "")
        reason = str(doc.get("queueReason") or "")
        if status != "queued":
            return
        if reason and reason != said and reason != "waiting for the scheduler":
            err.print(f"[yellow]queued: {reason}[/yellow]")
            said = reason
        started.wait(QUEUE_POLL_S)


def follow_execution(client: Client, execution_id: str, quiet: bool = False) -> str:
    """Print the execution's logs under per-step headers as they come; return its final status."""
    names = _step_names(client.execution(execution_id).get("signature") or [])
    started = threading.Event()
    if not quiet:
        threading.Thread(target=_say_why_queued, args=(client, execution_id, started), daemon=True).start()
    try:
        return _follow_events(client, execution_id, names, quiet, started)
    finally:
        started.set()


def _follow_events(
    client: Client, execution_id: str, names: dict[str, str], quiet: bool, started: threading.Event
) -> str:
    for event in client.follow(execution_id):
        kind = event.get("type")
        if kind == "end":
            return str(event.get("status"))
        if kind in ("step", "log", "initialization"):
            started.set()
        if quiet:
            continue
        ref = str(event.get("ref"))
        if kind == "log":
            sys.stdout.write(str(event.get("line", "")) + "\n")
        elif kind == "step" and ref in names:
            status = event.get("status")
            if status == "running":
                err.print(f"[bold]▶ {names[ref]}[/bold]")
            elif status is not None:
                colour = {"passed": "green", "skipped": "dim"}.get(str(status), "red")
                err.print(f"[{colour}]■ {names[ref]}: {status}[/{colour}]")
        sys.stdout.flush()
    return str(client.execution(execution_id)["result"]["status"])


def _target_text(target: Any) -> str:
    match = (target or {}).get("match") or {}
    if not match:
        return "the first matching agent"
    return "an agent with " + ",".join(f"{k}={'|'.join(v)}" for k, v in sorted(match.items()))


def run_remote(
    workflow: str,
    config: list[str],
    target: list[str],
    target_not: list[str],
    replicate: list[str],
    follow: bool,
    output: str,
    server: str | None,
    token: str | None,
    env: str | None,
) -> None:
    """`shoal run tw NAME`: create executions on the control plane and optionally follow them."""
    with connect(server, token, env) as client:
        created = client.run(
            workflow,
            config=parse_pairs(config, "--config"),
            match=parse_targets(target, "--target"),
            not_=parse_targets(target_not, "--target-not"),
            replicate=[r for item in replicate for r in item.split(",") if r],
            running_context={"interface": {"type": "cli"}, "actor": {"type": "user"}},
        )
        if not follow:
            emit(created, output, EXECUTION_COLUMNS)
            return
        statuses = []
        for ex in created:
            err.print(
                f"[bold]{ex['name']}[/bold] ({ex['id']}) on {ex.get('runner') or _target_text(ex.get('runnerTarget'))}"
            )
            statuses.append(follow_execution(client, ex["id"], quiet=output == "json"))
        final = [client.execution(ex["id"]) for ex in created]
        if output == "json":
            sys.stdout.write(json.dumps(final if len(final) > 1 else final[0], indent=2) + "\n")
        for ex in final:
            err.print(f"{ex['name']}: {ex['result']['status']} in {ex['result'].get('duration') or '-'}")
        if any(s != "passed" for s in statuses):
            raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    context = typer.Typer(help="Where client commands send their requests.", no_args_is_help=True)
    app.add_typer(context, name="context")

    @context.command("set")
    def context_set(
        server: str = typer.Option(..., "--server", help="Control plane URL."),
        token: str = typer.Option(None, "--token", help="API token."),
        env: str = typer.Option(None, "--env", help="Default environment."),
    ) -> None:
        """Save the server, token and environment under SHOAL_HOME (mode 0600)."""
        data = load_context()
        data["server"] = server.rstrip("/")
        if token:
            data["token"] = token
        if env:
            data["env"] = env
        path = context_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        err.print(f"context saved to {path}")

    @context.command("get")
    def context_get(output: str = OutputOpt) -> None:
        """Show the saved context (the token is shortened)."""
        data = load_context()
        if "token" in data:
            data["token"] = data["token"][:12] + "…"
        emit(
            data, output, [("SERVER", lambda r: r.get("server")), ("ENV", lambda r: r.get("env", "default"))]
        )

    envs = typer.Typer(help="Environments: where workflows live and agents connect.", no_args_is_help=True)
    app.add_typer(envs, name="env")

    @envs.command("create")
    def env_create(
        name: str, server: str = ServerOpt, token: str = TokenOpt, output: str = OutputOpt
    ) -> None:
        with connect(server, token, None) as c:
            emit(
                c.create_environment(name), output, [("NAME", lambda r: r["name"]), ("ID", lambda r: r["id"])]
            )

    @envs.command("get")
    def env_get(
        name: str = typer.Argument(None),
        server: str = ServerOpt,
        token: str = TokenOpt,
        output: str = OutputOpt,
    ) -> None:
        with connect(server, token, None) as c:
            items = [e for e in c.environments() if name is None or e["name"] == name]
            if name and not items:
                raise fail(f"environment {name!r} not found")
            emit(items if name is None else items[0], output, ENV_COLUMNS)

    @envs.command("update")
    def env_update(
        name: str,
        retain_days: int = typer.Option(None, "--retain-days", help="Keep executions younger than D days."),
        retain_count: int = typer.Option(None, "--retain-count", help="Keep the newest N per workflow."),
        server: str = ServerOpt,
        token: str = TokenOpt,
        output: str = OutputOpt,
    ) -> None:
        with connect(server, token, None) as c:
            emit(c.update_environment(name, retain_days, retain_count), output, ENV_COLUMNS)

    @envs.command("delete")
    def env_delete(name: str, server: str = ServerOpt, token: str = TokenOpt) -> None:
        with connect(server, token, None) as c:
            c.delete_environment(name)
        err.print(f"environment {name} deleted")

    tokens = typer.Typer(help="API tokens.", no_args_is_help=True)
    app.add_typer(tokens, name="token")

    @tokens.command("create")
    def token_create(
        role: str = typer.Option(..., "--role", help="agent, runner, viewer, editor or admin."),
        environment: str = typer.Option(None, "--env", help="Environment the token is confined to."),
        name: str = typer.Option("", "--name", help="A note to recognise the token by."),
        server: str = ServerOpt,
        token: str = TokenOpt,
    ) -> None:
        """Create a token and print only the token."""
        with connect(server, token, None) as c:
            sys.stdout.write(c.create_token(role, environment, name) + "\n")

    @app.command("apply")
    def apply(
        files: list[Path] = typer.Option(..., "--filename", "-f", help="A YAML file or a directory of them."),
        server: str = ServerOpt,
        token: str = TokenOpt,
        env: str = EnvOpt,
        output: str = OutputOpt,
    ) -> None:
        """Create or update the workflows, templates and cluster classes/pools/clusters in FILE or DIR."""
        paths: list[Path] = []
        for f in files:
            if f.is_dir():
                paths += sorted(p for p in f.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
            elif f.is_file():
                paths.append(f)
            else:
                raise fail(f"{f}: no such file or directory", code=2)
        from shoal.client import ClientError

        results: list[dict[str, Any]] = []
        with connect(server, token, env) as c:
            for p in paths:
                raw = p.read_bytes()
                workflows, clusters = _split_by_kind(raw)
                try:
                    if workflows is not None:
                        results += c.apply(workflows, str(p))
                    if clusters is not None:
                        applied = c._json(
                            "POST",
                            "/v1/clusters/apply",
                            content=clusters,
                            headers={"Content-Type": "application/yaml"},
                        )
                        results += [{**a, "revision": a.get("revision", "")} for a in applied["applied"]]
                except ClientError as exc:
                    raise fail(f"{p}: {exc}", exc.problems, code=2) from None
        emit(
            results,
            output,
            [
                ("KIND", lambda r: r["kind"]),
                ("NAME", lambda r: r["name"]),
                ("REVISION", lambda r: r.get("revision", "")),
                ("CHANGED", lambda r: "yes" if r["changed"] else "no"),
            ],
        )

    @app.command("get")
    def get(
        kind: str = typer.Argument(..., help="tw, twt, twe, agents or envs (Testkube's aliases work)."),
        name: str = typer.Argument(None, help="One resource by name (or execution id)."),
        workflow: str = typer.Option(None, "--workflow", "-w", help="twe: only this workflow's executions."),
        selector: str = typer.Option(None, "--label", "-l", help="Label selector for tw/twt."),
        status: str = typer.Option(None, "--status", help="twe: comma-separated statuses."),
        limit: int = typer.Option(1000, "--limit", help="twe: at most this many."),
        summary: bool = typer.Option(False, "--summary", help="tw NAME: aggregated results across agents."),
        by: str = typer.Option(None, "--by", help="With --summary: group by this agent label."),
        window: str = typer.Option("7d", "--window", help="With --summary: time window such as 7d or 24h."),
        server: str = ServerOpt,
        token: str = TokenOpt,
        env: str = EnvOpt,
        output: str = OutputOpt,
    ) -> None:
        """Show workflows (tw), templates (twt), executions (twe), agents or environments."""
        canonical = KIND_ALIASES.get(kind.lower())
        if canonical is None:
            raise fail(f"unknown kind {kind!r}: expected one of tw, twt, twe, agents, envs", code=2)
        with connect(server, token, env) as c:
            if canonical in ("tw", "twt"):
                if summary and canonical == "tw" and name:
                    params: dict[str, Any] = {"window": window}
                    if by:
                        params["by"] = by
                    data = c._json("GET", f"/v1/test-workflows/{name}/metrics", params=params)
                    emit(data if output != "table" else data.get("rows", []), output, SUMMARY_COLUMNS)
                    return
                path = "test-workflows" if canonical == "tw" else "test-workflow-templates"
                if name:
                    emit(c._json("GET", f"/v1/{path}/{name}"), output, RESOURCE_COLUMNS)
                else:
                    items = c.workflows(selector) if canonical == "tw" else c.templates(selector)
                    emit(items, output, RESOURCE_COLUMNS)
            elif canonical == "twe":
                if name:
                    emit(c.execution(name), output, EXECUTION_COLUMNS)
                    return
                rows: list[dict[str, Any]] = []
                page = 0
                while len(rows) < limit:
                    batch = c.executions(workflow, status, page=page, page_size=min(500, limit))["results"]
                    rows += batch
                    if len(batch) < min(500, limit):
                        break
                    page += 1
                emit(rows[:limit], output, EXECUTION_COLUMNS)
            elif canonical == "agents":
                items = [a for a in c.agents() if name is None or a["name"] == name]
                emit(items, output, AGENT_COLUMNS)
            else:
                items = [e for e in c.environments() if name is None or e["name"] == name]
                emit(items, output, ENV_COLUMNS)

    @app.command("delete")
    def delete(
        kind: str = typer.Argument(..., help="tw, twt or agent."),
        name: str = typer.Argument(...),
        server: str = ServerOpt,
        token: str = TokenOpt,
        env: str = EnvOpt,
    ) -> None:
        """Delete a workflow, a template or an agent's registration."""
        canonical = KIND_ALIASES.get(kind.lower())
        with connect(server, token, env) as c:
            if canonical == "tw":
                c.delete_resource("test-workflows", name)
            elif canonical == "twt":
                c.delete_resource("test-workflow-templates", name)
            elif canonical == "agents":
                c.delete_agent(name)
            else:
                raise fail(f"cannot delete {kind!r}: expected tw, twt or agent", code=2)
        err.print(f"{kind} {name} deleted")

    @app.command("logs")
    def logs(
        execution_id: str,
        follow: bool = typer.Option(False, "--follow", "-f", help="Stream until the execution ends."),
        server: str = ServerOpt,
        token: str = TokenOpt,
        env: str = EnvOpt,
    ) -> None:
        """Print an execution's log."""
        with connect(server, token, env) as c:
            if follow:
                status = follow_execution(c, execution_id)
                if status != "passed":
                    raise typer.Exit(1)
            else:
                sys.stdout.write(c.logs(execution_id))

    def _control(action: str) -> Callable[..., None]:
        def command(
            execution_id: str,
            follow: bool = typer.Option(False, "--follow", "-f", help="rerun: follow the new execution."),
            server: str = ServerOpt,
            token: str = TokenOpt,
            env: str = EnvOpt,
            output: str = OutputOpt,
        ) -> None:
            with connect(server, token, env) as c:
                result = c.control(execution_id, action)
                if action == "rerun" and follow:
                    statuses = [follow_execution(c, ex["id"]) for ex in result]
                    if any(s != "passed" for s in statuses):
                        raise typer.Exit(1)
                    return
                emit(result, output, EXECUTION_COLUMNS)

        command.__doc__ = {
            "abort": "Abort an execution (steps end as aborted).",
            "cancel": "Cancel an execution (steps end as canceled).",
            "rerun": "Run an execution's workflow again with the same config and target.",
        }[action]
        return command

    for action in ("abort", "cancel", "rerun"):
        app.command(action)(_control(action))

    artifacts = typer.Typer(help="Files an execution collected.", no_args_is_help=True)
    app.add_typer(artifacts, name="artifacts")

    @artifacts.command("list")
    def artifacts_list(
        execution_id: str,
        server: str = ServerOpt,
        token: str = TokenOpt,
        env: str = EnvOpt,
        output: str = OutputOpt,
    ) -> None:
        with connect(server, token, env) as c:
            emit(
                c.artifacts(execution_id),
                output,
                [("NAME", lambda r: r["name"]), ("SIZE", lambda r: r["size"])],
            )

    @artifacts.command("download")
    def artifacts_download(
        execution_id: str,
        name: str = typer.Argument(None, help="One artifact; all of them when omitted."),
        download_dir: Path = typer.Option(Path("artifacts"), "--download-dir", help="Where to save."),
        archive: bool = typer.Option(False, "--archive", help="All artifacts as one tar.gz."),
        server: str = ServerOpt,
        token: str = TokenOpt,
        env: str = EnvOpt,
    ) -> None:
        with connect(server, token, env) as c:
            if archive:
                dest = download_dir / f"{execution_id}-artifacts.tar.gz"
                size = c.download_archive(execution_id, dest)
                err.print(f"{dest} ({size} bytes)")
                return
            names = [name] if name else [a["name"] for a in c.artifacts(execution_id)]
            for n in names:
                dest = (download_dir / n).resolve()
                if not dest.is_relative_to(download_dir.resolve()):
                    raise fail(f"artifact name {n!r} would escape {download_dir}")
                size = c.download_artifact(execution_id, n, dest)
                err.print(f"{dest} ({size} bytes)")


CLUSTER_KINDS = frozenset({"EphemeralClusterClass", "EphemeralClusterPool", "EphemeralCluster"})


def _split_by_kind(raw: bytes) -> tuple[bytes | None, bytes | None]:
    """(workflow documents, cluster documents) of a YAML file; a file of one sort is passed unchanged,
    so the server's problems keep pointing at the user's lines."""
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(raw) if d is not None]
    except yaml.YAMLError:
        return raw, None  # the workflow loader reports the syntax error with its position
    kinds = [d.get("kind") if isinstance(d, dict) else None for d in docs]
    cluster = [k in CLUSTER_KINDS for k in kinds]
    if not any(cluster):
        return raw, None
    if all(cluster):
        return None, raw
    rest = [d for d, c in zip(docs, cluster, strict=True) if not c]
    mine = [d for d, c in zip(docs, cluster, strict=True) if c]
    return yaml.safe_dump_all(rest, sort_keys=False).encode(), yaml.safe_dump_all(
        mine, sort_keys=False
    ).encode()


RESOURCE_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("NAME", lambda r: r["metadata"]["name"]),
    (
        "LABELS",
        lambda r: ",".join(f"{k}={v}" for k, v in sorted((r["metadata"].get("labels") or {}).items())),
    ),
    ("REVISION", lambda r: r["metadata"].get("resourceVersion")),
    ("DESCRIPTION", lambda r: r.get("description")),
]
AGENT_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("NAME", lambda r: r["name"]),
    ("STATUS", lambda r: r["status"]),
    ("LABELS", _labels),
    ("LAST SEEN", lambda r: r.get("lastSeen")),
    ("CAPABILITIES", lambda r: ",".join(r.get("capabilities") or [])),
]
ENV_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("NAME", lambda r: r["name"]),
    ("RETAIN DAYS", lambda r: r.get("retainDays")),
    ("RETAIN COUNT", lambda r: r.get("retainCount")),
    ("CREATED", lambda r: r.get("createdAt")),
]
SUMMARY_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("KEY", lambda r: r.get("key")),
    ("LATEST", lambda r: r.get("latestStatus")),
    ("PASS RATE", lambda r: r.get("passRate")),
    ("RUNS", lambda r: r.get("executions")),
    ("P50 MS", lambda r: r.get("durationP50Ms")),
]
