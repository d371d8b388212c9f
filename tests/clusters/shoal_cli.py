"""`python -m tests.clusters.shoal_cli …`: the shoal command with the cluster commands registered (until
the lead adds `shoal.cli._cluster_cmds` to the command modules), for tests that need a real process."""

from __future__ import annotations

import typer

from shoal.cli import _client_cmds, _cluster_cmds

app = typer.Typer(pretty_exceptions_enable=False)
_client_cmds.register(app)
_cluster_cmds.register(app)

if __name__ == "__main__":
    app()
