"""The `shoal` command: every sub-command is registered here from its own module."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

from shoal import __version__

if TYPE_CHECKING:
    import typer

# Modules that contribute commands; each exposes `register(app: typer.Typer) -> None` and imports
# what its commands need (server, runtime, HTTP client, Rich, YAML) inside them, so that building
# the app for `shoal --help` or `shoal version` costs Typer alone.
_COMMAND_MODULES = (
    "shoal.cli._workflow_cmds",
    "shoal.cli._run_cmd",
    "shoal.cli._server_cmds",
    "shoal.cli._client_cmds",
    "shoal.cli._agent_cmds",
    "shoal.cli._render_cmd",
    "shoal.cli._dashboard_cmd",
    "shoal.cli._cluster_cmds",
)

EXIT_INTERNAL = 70


def _version_line() -> str:
    return f"shoal {__version__}\n"


def _version_callback(value: bool) -> None:
    import typer

    if value:
        typer.echo(_version_line(), nl=False)
        raise typer.Exit()


def build_app() -> typer.Typer:
    import typer

    app = typer.Typer(
        name="shoal",
        help="Run Testkube-compatible TestWorkflows locally, on Kubernetes and across ephemeral clusters.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
        ),
    ) -> None:
        """shoal: tests in ephemeral environments."""

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(app)

    @app.command("version")
    def _version() -> None:
        """Print the version."""
        typer.echo(_version_line(), nl=False)

    return app


def main() -> None:
    """Entry point of the console script: no traceback ever reaches the user."""
    if sys.argv[1:] in (["version"], ["--version"]):
        # A constant answer: Typer (and the pydantic it converts parameters with) is not needed for it.
        sys.stdout.write(_version_line())
        return
    try:
        app = build_app()
        app(standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("shoal: interrupted\n")
        sys.exit(130)
    except Exception as exc:  # the last line of defence: one clear line, never a traceback
        sys.stderr.write(f"shoal: internal error: {type(exc).__name__}: {exc}\n")
        sys.exit(EXIT_INTERNAL)
