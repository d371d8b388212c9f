"""`shoal agent` (connect to a control plane and run what it assigns) and `shoal up` (the embedded
default: a server and one local agent in one process, SQLite, state under SHOAL_HOME)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shoal.cli._client_cmds import fail, parse_pairs

if TYPE_CHECKING:
    import asyncio


def _home() -> Path:
    return Path(os.environ.get("SHOAL_HOME") or Path.home() / ".shoal")


def _stop_on_signals(stop: asyncio.Event) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def register(app: typer.Typer) -> None:
    @app.command("agent")
    def agent(
        server: str = typer.Option(..., "--server", envvar="SHOAL_SERVER", help="Control plane URL."),
        token: str = typer.Option(
            ..., "--token", envvar="SHOAL_AGENT_TOKEN", help="Agent token of an environment."
        ),
        name: str = typer.Option(
            None, "--name", help="Agent name, unique in its environment (default: hostname)."
        ),
        label: list[str] = typer.Option([], "--label", "-l", help="k=v, repeatable (e.g. cluster=pr-1234)."),
        state_dir: Path = typer.Option(
            None, "--state-dir", help="Outbox and workspaces (default SHOAL_HOME/agents/NAME)."
        ),
        max_concurrent: int = typer.Option(4, "--max-concurrent", help="Executions run at once."),
        runtime: str = typer.Option(
            "local", "--runtime", envvar="SHOAL_RUNTIME", help="local (processes) or kubernetes (Jobs/Pods)."
        ),
        kubeconfig: Path = typer.Option(
            None, "--kubeconfig", help="kubernetes: kubeconfig (default: SHOAL_KUBE_* / in-cluster)."
        ),
        namespace: str = typer.Option(
            None, "--namespace", help="kubernetes: default execution namespace (job.namespace overrides)."
        ),
        execution_namespace: list[str] = typer.Option(
            [], "--execution-namespace", help="kubernetes: a namespace executions may use (repeatable)."
        ),
        log_level: str = typer.Option("info", "--log-level"),
    ) -> None:
        """Connect to a control plane and run the executions routed to this agent (until stopped)."""
        import asyncio
        import logging
        import socket

        from shoal.agent import Agent, AgentConfig
        from shoal.execution import LocalRuntime, Runtime

        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        agent_name = name or socket.gethostname()
        labels = parse_pairs(label, "--label")
        cfg = AgentConfig(
            server=server.rstrip("/"),
            token=token,
            name=agent_name,
            labels=labels,
            state_dir=state_dir or _home() / "agents" / agent_name,
            max_concurrent=max_concurrent,
        )

        if runtime not in ("local", "kubernetes"):
            raise fail(f"--runtime {runtime!r}: expected local or kubernetes", code=2)
        cfg.capabilities = [runtime]
        cfg.labels.setdefault("kind", runtime)

        async def main() -> None:
            stop = asyncio.Event()
            _stop_on_signals(stop)
            chosen: Runtime
            if runtime == "kubernetes":
                from shoal.execution._kubernetes import KubernetesRuntime

                if kubeconfig is None and namespace is None and not execution_namespace:
                    # In a cluster, the agent chart configures the runtime through SHOAL_KUBE_* variables.
                    chosen = KubernetesRuntime.from_env(agent_name=agent_name, home=cfg.state_dir)
                else:
                    chosen = KubernetesRuntime(
                        kubeconfig,
                        namespace=namespace,
                        agent_name=agent_name,
                        namespaces=execution_namespace,
                        home=cfg.state_dir,
                    )
            else:
                chosen = LocalRuntime(home=cfg.state_dir)
            agent_ = Agent(cfg, chosen)
            await agent_.run(stop)
            if agent_.refused:
                raise fail("the server refused the agent token (it is wrong, revoked, or not an agent token)")
            if agent_.orphaned:
                raise fail(f"the agent's state directory {cfg.state_dir} was removed while it was disconnected")

        asyncio.run(main())

    @app.command("up")
    def up(
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8080, "--port", help="Port of the server (0 picks a free one)."),
        agent_name: str = typer.Option("local", "--agent-name", help="Name of the built-in local agent."),
        label: list[str] = typer.Option([], "--label", "-l", help="Labels of the local agent, k=v."),
        log_level: str = typer.Option("warning", "--log-level"),
    ) -> None:
        """Start the embedded default: control plane + one local agent, SQLite under SHOAL_HOME."""
        import asyncio
        import logging

        import uvicorn

        from shoal.agent import Agent, AgentConfig
        from shoal.client import Client
        from shoal.server import ServerSettings, create_app

        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        home = _home()
        settings = ServerSettings(home=home, print_admin_token=False)
        app_ = create_app(settings)
        server = uvicorn.Server(uvicorn.Config(app_, host=host, port=port, log_level=log_level))

        async def main() -> None:
            stop = asyncio.Event()
            serving = asyncio.create_task(server.serve())
            while not server.started:
                if serving.done():
                    await serving
                    raise fail(f"the server could not start on {host}:{port}")
                await asyncio.sleep(0.05)
            bound = server.servers[0].sockets[0].getsockname()[1]
            url = f"http://{host}:{bound}"
            admin = (home / "admin-token").read_text().strip()

            def agent_token() -> str:
                with Client(url, admin) as c:
                    return c.create_token("agent", "default", f"shoal up ({agent_name})")

            token = await asyncio.to_thread(agent_token)
            labels = {"kind": "local", **parse_pairs(label, "--label")}
            cfg = AgentConfig(url, token, agent_name, labels, home / "agents" / agent_name)
            agent_task = asyncio.create_task(Agent(cfg).run(stop))
            sys.stdout.write(f"shoal is up\n  server:    {url}\n  token:     {admin}\n")
            sys.stdout.write(
                f"  agent:     {agent_name} ({', '.join(f'{k}={v}' for k, v in labels.items())})\n"
            )
            sys.stdout.write(
                f"  state:     {home}\n  try:       shoal context set --server {url} --token <token>\n"
            )

            def dashboard_link() -> str:
                from shoal.cli._dashboard_cmd import request_link
                from shoal.client import ClientError

                try:
                    with Client(url, admin) as c:
                        return f"{request_link(c)['url']}  (single use)"
                except ClientError:  # the dashboard never keeps `up` from starting
                    return f"{url}/dashboard"

            sys.stdout.write(f"  dashboard: {await asyncio.to_thread(dashboard_link)}\n")
            sys.stdout.flush()
            _stop_on_signals(stop)
            await stop.wait()
            await agent_task
            server.should_exit = True
            await serving

        asyncio.run(main())
