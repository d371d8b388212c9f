"""`shoal server`: run the control plane."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("server", help="Run the control plane (state under SHOAL_HOME, default ~/.shoal).")
    def server(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8080, "--port", help="Port to listen on (0 picks a free one)."),
        home: Path | None = typer.Option(None, "--home", envvar="SHOAL_HOME", help="State directory."),
        log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
    ) -> None:
        import logging

        import uvicorn

        from shoal.server import ServerSettings, create_app

        settings = ServerSettings(home=home) if home else ServerSettings()
        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        app = create_app(settings)
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, ws_ping_interval=20)
        server = uvicorn.Server(config)

        original_startup = server.startup

        async def startup(sockets: object = None) -> None:
            await original_startup(sockets=sockets)  # type: ignore[arg-type]
            for srv in server.servers:
                for sock in srv.sockets:
                    addr = sock.getsockname()
                    typer.echo(f"shoal: server listening on http://{addr[0]}:{addr[1]}", err=True)

        server.startup = startup  # type: ignore[method-assign]
        server.run()
