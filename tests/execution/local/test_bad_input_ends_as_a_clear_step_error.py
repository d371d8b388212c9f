"""What goes wrong inside a step ends as that step's error, with a message that says what happened:
a missing binary, a working directory that cannot be created, a retry condition or a template that
fails at run time, a step killed by a signal, a `run` without a command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .local_helpers import run, steps_by_name

CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "missing binary",
        {"run": {"command": ["shoal-no-such-binary"], "args": ["x"]}},
        "command not found: shoal-no-such-binary",
    ),
    (
        "uncreatable working directory",
        {"workingDir": "/proc/shoal-cannot-be-here", "shell": "true"},
        "cannot create working directory /proc/shoal-cannot-be-here",
    ),
    (
        "retry until that errors",
        {
            "retry": {"count": 3, "until": "int(env.NOT_A_NUMBER) > 1"},
            "container": {"env": [{"name": "NOT_A_NUMBER", "value": "abc"}]},
            "shell": "true",
        },
        "retry.until:",
    ),
    (
        "expression error at run time",
        {
            "container": {"env": [{"name": "WORD", "value": "abc"}]},
            "shell": "echo {{ int(env.WORD) + 1 }}",
        },
        "shell:",
    ),
    ("killed by a signal", {"shell": "kill -KILL $$"}, "killed by signal KILL"),
]


@pytest.mark.parametrize(("case", "step", "message"), CASES, ids=[c[0] for c in CASES])
def test_step_fails_with_a_clear_message(
    case: str, step: dict[str, Any], message: str, tmp_path: Path
) -> None:
    outcome, _ = run({"steps": [{"name": "bad", **step}, {"name": "next", "shell": "true"}]}, tmp_path)
    steps = steps_by_name(outcome)
    assert outcome.status == "failed", case
    assert steps["bad"]["status"] == "failed"
    assert message in steps["bad"].get("errorMessage", ""), steps["bad"]
    assert steps["next"]["status"] == "skipped"


def test_run_without_command_names_the_image_and_the_field(tmp_path: Path) -> None:
    outcome, _ = run({"steps": [{"name": "db", "run": {"image": "postgres:16"}}]}, tmp_path)
    step = steps_by_name(outcome)["db"]
    assert step["status"] == "failed"
    assert "postgres:16" in step["errorMessage"] and "run.command" in step["errorMessage"]
