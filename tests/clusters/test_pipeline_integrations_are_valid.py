"""The Tekton tasks, the PR pipeline and the GitHub Action parse, name the CLI's real options, and
their shell scripts pass shellcheck."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.clusters.cli import app

ROOT = Path(__file__).resolve().parents[2]
INTEGRATIONS = ROOT / "deploy" / "integrations"


def _scripts(node: Any) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("script", "run") and isinstance(value, str):
                found.append((key, value))
            else:
                found += _scripts(value)
    elif isinstance(node, list):
        for item in node:
            found += _scripts(item)
    return found


def test_documents_parse_and_scripts_pass_shellcheck(tmp_path: Path) -> None:
    files = sorted(INTEGRATIONS.rglob("*.y*ml"))
    assert {f.name for f in files} >= {
        "provision-ephemeral-cluster.yaml",
        "deprovision-ephemeral-cluster.yaml",
        "pipeline-pr-example.yaml",
        "action.yml",
        "example-pr.yml",
    }
    n = 0
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            for kind, text in _scripts(doc):
                body = re.sub(r"\$\{\{[^}]*\}\}|\$\([a-zA-Z.]+\)", "X", text)  # Tekton/Actions substitutions
                shell = "bash" if kind == "run" else "sh"
                script = tmp_path / f"s{n}.sh"
                script.write_text(body if body.startswith("#!") else f"#!/bin/{shell}\n{body}")
                n += 1
                result = subprocess.run(
                    ["shellcheck", "-e", "SC2016", str(script)], capture_output=True, text=True
                )
                assert result.returncode == 0, f"{f.name}: {result.stdout}"
    assert n >= 5


def test_scripts_use_options_the_cli_has() -> None:
    from typer.main import get_command

    command = get_command(app())
    cluster = command.commands["cluster"]  # type: ignore[attr-defined]
    options = {
        name: {o for p in sub.params for o in getattr(p, "opts", [])}
        for name, sub in cluster.commands.items()
    }
    text = "\n".join(f.read_text() for f in INTEGRATIONS.rglob("*.y*ml"))
    for verb, used in (
        ("provision", re.findall(r"--[a-z-]+", text)),
        ("deprovision", ["--wait", "--timeout"]),
    ):
        wanted = {
            o
            for o in used
            if o
            in {
                "--class",
                "--pool",
                "--lifetime",
                "--owner",
                "--label",
                "--wait",
                "--timeout",
                "--kubeconfig-out",
            }
        }
        assert wanted <= options[verb], wanted - options[verb]
