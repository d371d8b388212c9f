"""Without a mount namespace (not Linux, no bubblewrap/unshare, or --sandbox none) a workflow that
uses /data, /testkube or pod volumes fails at initialization with a clear message; one that does
not use them still runs, on the host."""

from __future__ import annotations

from pathlib import Path

from shoal.execution import LocalRuntime

from .local_helpers import run, steps_by_name


def test_paths_are_refused_and_plain_steps_still_run(tmp_path: Path) -> None:
    runtime = LocalRuntime(tmp_path, sandbox="none")
    outcome, _ = run({"steps": [{"name": "s", "shell": "echo x > /data/x"}]}, tmp_path, runtime=runtime)
    init = outcome.execution["result"]["initialization"]
    assert outcome.status == "failed" and init["status"] == "failed"
    assert "/data" in init["errorMessage"] and "mount namespace" in init["errorMessage"]
    assert steps_by_name(outcome)["s"]["status"] == "skipped"

    outcome, _ = run({"steps": [{"name": "plain", "shell": "echo fine"}]}, tmp_path, runtime=runtime)
    assert outcome.status == "passed", outcome.execution["result"]
