"""SIGTERM (or Ctrl-C) to `shoal run` aborts the execution: the running step ends aborted, the
rest skipped, nothing it started survives, and the exit code is 1."""

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
  name: interrupted
spec:
  steps:
  - name: long
    shell: echo long started; sleep 319
  - name: never
    shell: echo never
"""


def _sleepers() -> int:
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    count += fh.read() == b"sleep\x00319\x00"
            except OSError:
                continue
    return count


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_the_runner_aborts(tmp_path: Path, sig: signal.Signals) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW)
    home = tmp_path / "home"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal", "run", str(wf), "-o", "json"],
        env={**os.environ, "SHOAL_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    started = False
    while not started and time.monotonic() < deadline:  # follow the event log of another process
        for events in home.glob("executions/*/events.jsonl"):
            started = any(
                json.loads(line).get("line") == "long started" for line in events.read_text().splitlines()
            )
        if not started:
            time.sleep(0.01)
    assert started
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    doc = json.loads(out)
    steps = {n["name"]: doc["result"]["steps"][n["ref"]] for n in doc["signature"]}
    assert doc["result"]["status"] == "aborted"
    assert steps["long"]["status"] == "aborted"
    assert steps["never"]["status"] == "skipped"
    end = time.monotonic() + 5
    while _sleepers() and time.monotonic() < end:
        time.sleep(0.02)
    assert _sleepers() == 0
