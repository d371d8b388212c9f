"""Run `shoal run` in-process (Typer's runner) against a temporary SHOAL_HOME."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from shoal.cli._run_cmd import register


def shoal_run(args: list[str], home: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.setenv("SHOAL_HOME", str(home))
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # a callback keeps `run` a sub-command, as in the real `shoal`
        pass

    result = CliRunner().invoke(app, ["run", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def write_workflow(path: Path, steps: str, *, name: str = "wf", extra: str = "") -> Path:
    path.write_text(
        f"apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: {name}\n"
        f"spec:\n{extra}  steps:\n{steps}"
    )
    return path


def execution(stdout: str) -> dict[str, Any]:
    doc = json.loads(stdout)
    assert isinstance(doc, dict)
    return doc
