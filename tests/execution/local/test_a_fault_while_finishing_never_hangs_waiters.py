"""If deriving the final result fails (a bug in the status rules), the execution still ends:
wait() returns an aborted outcome that says why, and execution.json is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import shoal.execution._local as local

from .local_helpers import run


def test_waiters_get_an_aborted_outcome(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ValueError("result expression too deep")

    monkeypatch.setattr(local, "execution_document", broken)
    outcome, events = run({"steps": [{"name": "s", "shell": "true"}]}, tmp_path)
    assert outcome.status == "aborted"
    message = outcome.execution["result"]["initialization"]["errorMessage"]
    assert "result expression too deep" in message
    assert (Path(outcome.execution["workspace"]) / "execution.json").exists()
    assert events[-1].type == "status"
