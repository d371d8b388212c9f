"""A runner killed with SIGKILL mid-step leaves its workspace; `shoal run --attach ID` re-attaches,
keeps what finished, marks what cannot continue as aborted and continues the event numbering."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKFLOW = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: resumable
spec:
  steps:
  - name: first
    shell: echo first done
  - name: second
    shell: echo second started; sleep 317
  - name: third
    shell: echo third
"""


def _wait_for_line(home: Path, needle: str, proc: subprocess.Popen[bytes], within: float = 30.0) -> Path:
    """Follow the execution's events.jsonl until a log event with ``needle`` is in it."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for events in (home / "executions").glob("*/events.jsonl"):
            if f'"line":{json.dumps(needle)}' in events.read_text():
                return events
        assert proc.poll() is None, "the runner ended before the step started"
        time.sleep(0.01)  # polling a file with a deadline: the runner is another process
    raise AssertionError(f"{needle!r} never reached events.jsonl")


@pytest.mark.slow
def test_attach_finalises_an_execution_whose_runner_died(tmp_path: Path) -> None:
    home = tmp_path / "home"
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    env = {**os.environ, "SHOAL_HOME": str(home)}
    runner = subprocess.Popen(
        [sys.executable, "-m", "shoal", "run", str(wf), "-o", "json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        events = _wait_for_line(home, "second started", runner)
    finally:
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
    execution_id = events.parent.name
    before = [json.loads(line) for line in events.read_text().splitlines() if line.endswith("}")]

    attach = subprocess.run(
        [sys.executable, "-m", "shoal", "run", "--attach", execution_id, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert attach.returncode == 1, attach.stderr
    doc = json.loads(attach.stdout)
    steps = {n["name"]: doc["result"]["steps"][n["ref"]] for n in doc["signature"]}
    assert steps["first"]["status"] == "passed"
    assert steps["second"]["status"] == "aborted"
    assert steps["third"]["status"] == "skipped"
    assert doc["result"]["status"] == "aborted"

    after = [json.loads(line) for line in events.read_text().splitlines()]
    seqs = [e["seq"] for e in after]
    assert seqs == list(range(1, len(after) + 1))  # numbering continued, nothing doubled
    assert len(after) > len(before)

    deadline = time.monotonic() + 5
    while _sleepers() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _sleepers(), "the step's process outlived its runner"

    again = subprocess.run(
        [sys.executable, "-m", "shoal", "run", "--attach", execution_id, "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(again.stdout)["result"] == doc["result"]  # idempotent
    assert [json.loads(line)["seq"] for line in events.read_text().splitlines()] == seqs


def _sleepers() -> list[str]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    if fh.read() == b"sleep\x00317\x00":
                        found.append(name)
            except OSError:
                continue
    return found
