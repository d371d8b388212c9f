"""A step printing 1,000,000 lines: every line arrives as a log event, and the runner's memory stays
bounded (it streams; it never holds the log)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

LINES = 1_000_000


@pytest.mark.slow
def test_a_million_lines_all_arrive(tmp_path: Path) -> None:
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: loud\n"
        f"spec:\n  steps:\n  - name: print\n    shell: seq 1 {LINES}\n"
    )
    env = {**os.environ, "SHOAL_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal", "run", str(wf), "-o", "json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Count the streamed lines instead of keeping them, like a consumer of the CLI would.
    assert proc.stderr is not None and proc.stdout is not None
    streamed = 0
    last = b""
    for line in proc.stderr:
        streamed += 1
        last = line
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out[-2000:]
    doc = json.loads(out)
    assert doc["result"]["status"] == "passed"
    assert streamed >= LINES and last == f"{LINES}\n".encode()

    # Every line, in order, as a log event (a regex over the file: a million json.loads are slow).
    data = (Path(doc["workspace"]) / "events.jsonl").read_bytes()
    lines = re.findall(rb'"type":"log","ref":"[^"]*","line":"(\d+)"', data)
    assert lines == [str(i).encode() for i in range(1, LINES + 1)]
    # Bounded: the peak of the million-line run stays within a margin of a 1,000-line run's peak (the
    # interpreter and its imports are the bulk of either), so nothing grows with the log.
    small = subprocess.Popen(
        [sys.executable, "-m", "shoal", "run", str(_small_workflow(tmp_path)), "-o", "json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, small_status, small_usage = os.wait4(small.pid, 0)
    assert os.waitstatus_to_exitcode(small_status) == 0
    growth = usage.ru_maxrss - small_usage.ru_maxrss
    assert growth < 64 * 1024, f"peak RSS {usage.ru_maxrss} KiB vs {small_usage.ru_maxrss} KiB for 1,000 lines"


def _small_workflow(tmp_path: Path) -> Path:
    wf = tmp_path / "small.yaml"
    wf.write_text(
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: quiet\n"
        "spec:\n  steps:\n  - name: print\n    shell: seq 1 1000\n"
    )
    return wf
