"""The `shoal` command with the cluster commands registered, run in-process (typer's CliRunner)."""

from __future__ import annotations

import json
from typing import Any

import typer
from typer.testing import CliRunner

from shoal.cli import _client_cmds, _cluster_cmds


def app() -> typer.Typer:
    a = typer.Typer(pretty_exceptions_enable=False)
    _client_cmds.register(a)
    _cluster_cmds.register(a)
    return a


def shoal(server: str, token: str, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app(), list(args), env={"SHOAL_SERVER": server, "SHOAL_TOKEN": token})
    assert result.exit_code == code, f"shoal {' '.join(args)} exited {result.exit_code}: {result.output}"
    return result.stdout


def shoal_json(server: str, token: str, *args: str) -> Any:
    return json.loads(shoal(server, token, *args, "-o", "json"))
