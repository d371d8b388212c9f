"""`shoal cluster …`, `shoal pool …` and `shoal controller`: ephemeral clusters from a terminal or a
pipeline — provision (or claim) and wait, hand the kubeconfig over, tear down and wait.

Exit codes: 0 done; 1 the cluster failed or the server refused; 2 bad usage; 3 timed out waiting.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shoal.cli._client_cmds import (
    EnvOpt,
    OutputOpt,
    ServerOpt,
    TokenOpt,
    connect,
    emit,
    err,
    fail,
    parse_pairs,
)

if TYPE_CHECKING:
    from shoal.client import Client

EXIT_TIMEOUT = 3
FAILED_PHASES = ("Failed", "Deprovisioning", "Deprovisioned")


def _cond(row: dict[str, Any], ctype: str) -> str:
    for c in (row.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return f"{c.get('status')}/{c.get('reason')}"
    return ""


CLUSTER_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("NAME", lambda r: r["metadata"]["name"]),
    ("CLASS", lambda r: r["spec"].get("classRef")),
    ("POOL", lambda r: r["spec"].get("poolRef") or (r["status"].get("pool") or {}).get("name")),
    ("PHASE", lambda r: r["status"].get("phase")),
    (
        "LABELS",
        lambda r: ",".join(f"{k}={v}" for k, v in sorted((r["metadata"].get("labels") or {}).items())),
    ),
    ("EXPIRES", lambda r: r["status"].get("expiresAt")),
    ("TEARDOWN", lambda r: _cond(r, "TeardownRequested")),
]
POOL_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("NAME", lambda r: r["metadata"]["name"]),
    ("CLASS", lambda r: r["spec"].get("classRef")),
    ("SIZE", lambda r: r["spec"].get("size")),
    ("MAX", lambda r: r["spec"].get("maxSize")),
    ("READY", lambda r: r["status"].get("ready")),
    ("PROVISIONING", lambda r: r["status"].get("provisioning")),
    ("CLAIMED", lambda r: r["status"].get("claimed")),
]
CLASS_COLUMNS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("NAME", lambda r: r["metadata"]["name"]),
    ("PROVISIONER", lambda r: r["spec"].get("provisioner")),
    ("DEFAULT LIFETIME", lambda r: r["spec"].get("defaultLifetime")),
    ("MAX LIFETIME", lambda r: r["spec"].get("maxLifetime")),
    ("AGENT", lambda r: "yes" if r["spec"].get("installAgent") else "no"),
]


def wait_for_phase(
    client: Client, name: str, wanted: tuple[str, ...], timeout: float, give_up: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Poll the cluster until its phase is one of ``wanted`` (or ``give_up``), with a deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    last = ""
    while True:
        row: dict[str, Any] = client._json("GET", f"/v1/clusters/{name}")
        phase = str(row.get("status", {}).get("phase"))
        if phase != last:
            err.print(f"[dim]cluster {name}: {phase}[/dim]")
            last = phase
        if phase in wanted or phase in give_up:
            return row
        if time.monotonic() > deadline:
            raise fail(
                f"timed out after {timeout:.0f}s waiting for cluster {name} (phase {phase})",
                code=EXIT_TIMEOUT,
            )
        time.sleep(delay)
        delay = min(delay * 1.3, 1.0)


def _timeout(value: str) -> float:
    from shoal.clusters import parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise fail(str(exc), code=2) from None
    return seconds if seconds is not None else 1800.0


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _apply(files: list[Path], server: str | None, token: str | None, env: str | None, output: str) -> None:
    import yaml

    from shoal.client import ClientError

    results: list[dict[str, Any]] = []
    with connect(server, token, env) as c:
        for f in files:
            paths = sorted(p for p in f.rglob("*") if p.suffix in (".yaml", ".yml")) if f.is_dir() else [f]
            for p in paths:
                if not p.is_file():
                    raise fail(f"{p}: no such file", code=2)
                content = p.read_bytes()
                try:  # said here, where the file has a name, rather than by the server
                    list(yaml.safe_load_all(content))
                except yaml.YAMLError as exc:
                    mark = getattr(exc, "problem_mark", None)
                    where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(p)
                    problem = getattr(exc, "problem", None) or exc
                    raise fail(f"{where}: invalid YAML: {problem}", code=2) from None
                try:
                    data = c._json(
                        "POST", "/v1/clusters/apply", content=content, headers={"Content-Type": "application/yaml"}
                    )
                except ClientError as exc:
                    raise fail(f"{p}: {exc}", exc.problems) from None
                results += data["applied"]
    emit(
        results,
        output,
        [
            ("KIND", lambda r: r["kind"]),
            ("NAME", lambda r: r["name"]),
            ("CHANGED", lambda r: "yes" if r["changed"] else "no"),
        ],
    )


def register(app: typer.Typer) -> None:
    cluster = typer.Typer(
        help="Ephemeral clusters and namespaces: provision, hand over, tear down.", no_args_is_help=True
    )
    app.add_typer(cluster, name="cluster")
    pool = typer.Typer(help="Warm pools of ready clusters.", no_args_is_help=True)
    app.add_typer(pool, name="pool")

    @cluster.command("provision")
    def provision(
        class_name: str = typer.Option(
            None, "--class", "-c", help="EphemeralClusterClass (default: the pool's class, else local)."
        ),
        pool_name: str = typer.Option(None, "--pool", "-p", help="Claim a ready spare from this pool."),
        fallback: bool = typer.Option(
            False, "--fallback-to-fresh", help="With --pool: provision when none is ready."
        ),
        name: str = typer.Option(None, "--name", help="Cluster name (default: generated)."),
        label: list[str] = typer.Option(
            [], "--label", "-l", help="k=v, repeatable; the agent gets them too."
        ),
        param: list[str] = typer.Option([], "--param", help="k=v parameter override (as the class allows)."),
        lifetime: str = typer.Option(None, "--lifetime", help="e.g. 2h (capped by the class's maxLifetime)."),
        owner: str = typer.Option(
            None, "--owner", help="kind/name the cluster lives for: execution/ID, agent/NAME, heartbeat/10m."
        ),
        wait: bool = typer.Option(False, "--wait", "-w", help="Wait until Ready (exit 1 if it fails)."),
        timeout: str = typer.Option(
            "30m", "--timeout", help="With --wait: give up after this long (exit 3)."
        ),
        kubeconfig_out: Path = typer.Option(
            None, "--kubeconfig-out", help="With --wait: write the kubeconfig (0600)."
        ),
        server: str = ServerOpt,
        token: str = TokenOpt,
        env: str = EnvOpt,
        output: str = OutputOpt,
    ) -> None:
        """Request a cluster (or claim one from a pool); with --wait, block until it is Ready."""
        body: dict[str, Any] = {"labels": parse_pairs(label, "--label")}
        if class_name or not pool_name:
            body["classRef"] = class_name or "local"
        if pool_name:
            body["poolRef"] = pool_name
            body["fallbackToFresh"] = fallback
        if name:
            body["name"] = name
        if param:
            body["parameters"] = parse_pairs(param, "--param")
        if lifetime:
            body["lifetime"] = lifetime
        if owner:
            kind, _, rest = owner.partition("/")
            if not kind or not rest:
                raise fail(f"--owner {owner!r}: expected KIND/NAME (execution/ID, agent/NAME) or heartbeat/DURATION",
                           code=2)
            body["owner"] = (
                {"kind": kind, "timeout": rest} if kind == "heartbeat" else {"kind": kind, "name": rest}
            )
        if kubeconfig_out and not wait:
            raise fail("--kubeconfig-out needs --wait", code=2)
        limit = _timeout(timeout)  # a bad value fails before anything is requested
        with connect(server, token, env) as c:
            row: dict[str, Any] = c._json("POST", "/v1/clusters", json=body)
            cname = row["metadata"]["name"]
            if wait:
                row = wait_for_phase(c, cname, ("Ready",), limit, FAILED_PHASES)
                if row["status"]["phase"] != "Ready":
                    emit(row, output, CLUSTER_COLUMNS)
                    raise fail(
                        f"cluster {cname} did not become Ready: {row['status'].get('message') or row['status']['phase']}"
                    )
                if kubeconfig_out:
                    _write_private(kubeconfig_out, c._request("GET", f"/v1/clusters/{cname}/kubeconfig").text)
                    err.print(f"kubeconfig written to {kubeconfig_out}")
            emit(row, output, CLUSTER_COLUMNS)

    @cluster.command("deprovision")
    def deprovision(
        name: str,
        wait: bool = typer.Option(False, "--wait", "-w", help="Wait until Deprovisioned (or Failed)."),
        timeout: str = typer.Option(
            "30m", "--timeout", help="With --wait: give up after this long (exit 3)."
        ),
        server: str = ServerOpt,
        token: str = TokenOpt,
        env: str = EnvOpt,
        output: str = OutputOpt,
    ) -> None:
        """Signal teardown (sticky); the agent is removed first, the results stay."""
        limit = _timeout(timeout)  # a bad value fails before anything is signalled
        with connect(server, token, env) as c:
            row: dict[str, Any] = c._json("POST", f"/v1/clusters/{name}/teardown")
            if wait:
                row = wait_for_phase(c, name, ("Deprovisioned", "Failed"), limit)
            emit(row, output, CLUSTER_COLUMNS)

    @cluster.command("delete")
    def delete(
        name: str,
        wait: bool = typer.Option(False, "--wait", "-w", help="Wait until the record is gone."),
        timeout: str = typer.Option("30m", "--timeout"),
        server: str = ServerOpt,
        token: str = TokenOpt,
        env: str = EnvOpt,
    ) -> None:
        """Tear down and then remove the record."""
        from shoal.client import ClientError

        limit = _timeout(timeout)
        with connect(server, token, env) as c:
            c._json("DELETE", f"/v1/clusters/{name}")
            if wait:
                deadline = time.monotonic() + limit
                delay = 0.1
                while True:
                    try:
                        c._json("GET", f"/v1/clusters/{name}")
                    except ClientError as exc:
                        if exc.status == 404:
                            break
                        raise
                    if time.monotonic() > deadline:
                        raise fail(f"timed out waiting for cluster {name} to go", code=EXIT_TIMEOUT)
                    time.sleep(delay)
                    delay = min(delay * 1.3, 1.0)
        err.print(f"cluster {name} deleted")

    @cluster.command("get")
    def get(
        name: str = typer.Argument(None),
        selector: str = typer.Option(None, "--selector", "-l", help="Label selector."),
        members: bool = typer.Option(False, "--all", "-A", help="Include pool spares."),
        server: str = ServerOpt,
        token: str = TokenOpt,
        env: str = EnvOpt,
        output: str = OutputOpt,
    ) -> None:
        """List clusters, or show one."""
        with connect(server, token, env) as c:
            if name:
                emit(c._json("GET", f"/v1/clusters/{name}"), output, CLUSTER_COLUMNS)
                return
            params: dict[str, Any] = {"members": str(members).lower()}
            if selector:
                params["selector"] = selector
            emit(c._json("GET", "/v1/clusters", params=params), output, CLUSTER_COLUMNS)

    @cluster.command("describe")
    def describe(name: str, server: str = ServerOpt, token: str = TokenOpt, env: str = EnvOpt) -> None:
        """Everything about one cluster: spec, status, conditions with reasons, deadlines."""
        import yaml

        with connect(server, token, env) as c:
            row = c._json("GET", f"/v1/clusters/{name}")
        conditions = row["status"].pop("conditions", [])
        sys.stdout.write(yaml.safe_dump({k: row[k] for k in ("metadata", "spec", "status")}, sort_keys=False))
        sys.stdout.write("conditions:\n")
        emit(
            conditions,
            "table",
            [
                ("TYPE", lambda r: r.get("type")),
                ("STATUS", lambda r: r.get("status")),
                ("REASON", lambda r: r.get("reason")),
                ("SINCE", lambda r: r.get("lastTransitionTime")),
                ("MESSAGE", lambda r: r.get("message")),
            ],
        )

    @cluster.command("kubeconfig")
    def kubeconfig(name: str, server: str = ServerOpt, token: str = TokenOpt, env: str = EnvOpt) -> None:
        """Print the short-lived kubeconfig of a Ready cluster (e.g. `shoal cluster kubeconfig pr-1 > kc`)."""
        with connect(server, token, env) as c:
            sys.stdout.write(c._request("GET", f"/v1/clusters/{name}/kubeconfig").text)

    @cluster.command("heartbeat")
    def heartbeat(name: str, server: str = ServerOpt, token: str = TokenOpt, env: str = EnvOpt) -> None:
        """Renew the cluster's activity (idle timeout, heartbeat owners)."""
        with connect(server, token, env) as c:
            c._json("POST", f"/v1/clusters/{name}/heartbeat")

    @cluster.command("apply")
    def apply(
        files: list[Path] = typer.Option(..., "--filename", "-f", help="YAML with classes, pools, clusters."),
        server: str = ServerOpt,
        token: str = TokenOpt,
        env: str = EnvOpt,
        output: str = OutputOpt,
    ) -> None:
        """Create or update EphemeralClusterClass, EphemeralClusterPool and EphemeralCluster documents."""
        _apply(files, server, token, env, output)

    @cluster.command("classes")
    def classes(
        server: str = ServerOpt, token: str = TokenOpt, env: str = EnvOpt, output: str = OutputOpt
    ) -> None:
        """List cluster classes (the built-in `local` included)."""
        with connect(server, token, env) as c:
            emit(c._json("GET", "/v1/cluster-classes"), output, CLASS_COLUMNS)

    @cluster.command("delete-class")
    def delete_class(name: str, server: str = ServerOpt, token: str = TokenOpt, env: str = EnvOpt) -> None:
        """Delete a cluster class (running clusters keep the snapshot they were provisioned with)."""
        with connect(server, token, env) as c:
            c._json("DELETE", f"/v1/cluster-classes/{name}")
        err.print(f"cluster class {name} deleted")

    @cluster.command("reap")
    def reap(
        delete_: bool = typer.Option(False, "--delete", help="Really delete (default: dry run)."),
        grace: str = typer.Option(
            None, "--grace", help="Only what is older than this (default: server setting)."
        ),
        server: str = ServerOpt,
        token: str = TokenOpt,
        output: str = OutputOpt,
    ) -> None:
        """List (or delete) external resources that no live cluster record accounts for."""
        params: dict[str, Any] = {"dryRun": str(not delete_).lower()}
        if grace:
            params["graceSeconds"] = _timeout(grace)
        with connect(server, token, None) as c:
            data = c._json("POST", "/v1/clusters/reap", params=params)
        emit(
            data["reaped"] if output == "table" else data,
            output,
            [
                ("PROVISIONER", lambda r: r["provisioner"]),
                ("EXTERNAL NAME", lambda r: r["externalName"]),
                ("CLUSTER", lambda r: r["cluster"]),
                ("REASON", lambda r: r["reason"]),
                ("DELETED", lambda r: "yes" if r["deleted"] else "no"),
            ],
        )

    @pool.command("apply")
    def pool_apply(
        files: list[Path] = typer.Option(
            ..., "--filename", "-f", help="YAML with EphemeralClusterPool documents."
        ),
        server: str = ServerOpt,
        token: str = TokenOpt,
        env: str = EnvOpt,
        output: str = OutputOpt,
    ) -> None:
        """Create or update pools (classes in the same files are applied too)."""
        _apply(files, server, token, env, output)

    @pool.command("get")
    def pool_get(
        name: str = typer.Argument(None),
        server: str = ServerOpt,
        token: str = TokenOpt,
        env: str = EnvOpt,
        output: str = OutputOpt,
    ) -> None:
        """Pools with their ready, provisioning and claimed counts."""
        with connect(server, token, env) as c:
            data = (
                c._json("GET", f"/v1/cluster-pools/{name}") if name else c._json("GET", "/v1/cluster-pools")
            )
            emit(data, output, POOL_COLUMNS)

    @pool.command("delete")
    def pool_delete(name: str, server: str = ServerOpt, token: str = TokenOpt, env: str = EnvOpt) -> None:
        """Delete a pool; its spares are torn down, claimed clusters live on."""
        with connect(server, token, env) as c:
            c._json("DELETE", f"/v1/cluster-pools/{name}")
        err.print(f"pool {name} deleted")

    @app.command("controller")
    def controller(
        server_url: str = typer.Option(
            ...,
            "--server-url",
            envvar="SHOAL_PUBLIC_URL",
            help="Control plane URL installed agents connect to.",
        ),
        home: Path = typer.Option(
            None, "--home", envvar="SHOAL_HOME", help="State directory (sandboxes, key)."
        ),
        log_level: str = typer.Option("info", "--log-level"),
    ) -> None:
        """Run the ephemeral-cluster controller alone, against the server's database (SHOAL_DATABASE_URL).
        Set SHOAL_CLUSTERS_CONTROLLER=0 on the servers so that only this process reconciles."""
        import asyncio
        import logging
        import signal

        from shoal.clusters import controller_from_env
        from shoal.server._sealing import Sealer
        from shoal.store import Store, shoal_home

        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        state_home = home or shoal_home()
        state_home.mkdir(parents=True, exist_ok=True)

        async def main() -> None:
            store = await Store.open(home=state_home)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            try:
                ctl = controller_from_env(store, Sealer.from_home(state_home), state_home, server_url)
                err.print(f"shoal: cluster controller {ctl.settings.holder} running")
                await ctl.run(stop)
            finally:
                await store.close()

        asyncio.run(main())
