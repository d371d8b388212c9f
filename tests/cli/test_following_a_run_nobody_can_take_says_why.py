"""`shoal run tw NAME --target ... -f` for a run no agent can take (its cluster is gone) says why it
waits instead of looking like a hang."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.harness import server_in_thread

WORKFLOW = """
kind: TestWorkflow
apiVersion: testworkflows.testkube.io/v1
metadata: {name: waits}
spec:
  steps: [{name: hello, shell: echo hello}]
"""


def test_a_queued_run_says_why_it_waits(tmp_path: Path) -> None:
    with server_in_thread(tmp_path / "home") as srv, srv.client() as admin:
        admin.apply(WORKFLOW)
        env = {**os.environ, "SHOAL_SERVER": srv.url, "SHOAL_TOKEN": srv.admin_token, "SHOAL_HOME": str(tmp_path)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "shoal", "run", "tw", "waits", "--target", "cluster=gone", "-f"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert proc.stderr is not None
            deadline = time.monotonic() + 30
            seen: list[str] = []
            while time.monotonic() < deadline:
                line = proc.stderr.readline()  # blocks until the CLI prints (or exits)
                if not line:
                    break
                seen.append(line)
                if "queued:" in line:
                    break
            said = " ".join("".join(seen).split())
            assert "queued: no online agent matches" in said and "cluster=gone" in said, said
        finally:
            proc.kill()
            proc.wait(10)
