from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from shoal.execution._toolkit.__main__ import main
from tests.execution.toolkit.toolkit_helpers import Execution, one_stage_plan


def test_usage_and_unknown_kind_exit_155() -> None:
    out = io.StringIO()
    assert main(["git"], env={}, out=out) == 155
    assert main(["frobnicate", "r1"], env={}, out=out) == 155
    assert "unknown toolkit operation" in out.getvalue()


def test_missing_state_dir_fails_with_a_reason() -> None:
    out = io.StringIO()
    assert main(["git", "r1"], env={}, out=out) == 1
    assert "SHOAL_DIR is not set" in out.getvalue()


def test_ref_of_another_kind_is_refused(execution: Execution) -> None:
    res = execution.run("git", {}, plan=one_stage_plan("artifacts", {"paths": ["x"]}))
    assert res.code == 1
    assert "is a 'artifacts' stage, not 'git'" in res.text


def test_runs_as_a_module_with_the_stage_env(execution: Execution) -> None:
    (execution.data / "f.txt").write_text("x")
    (execution.shoal_dir / "plan.json").write_text(
        json.dumps(one_stage_plan("artifacts", {"paths": ["*.txt"]}).to_dict())
    )
    env = {**os.environ, **execution.env()}
    proc = subprocess.run(
        [sys.executable, "-m", "shoal.execution._toolkit", "artifacts", "rstage"],
        cwd=execution.data,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '\x01\x05\x06rstage\x03artifact\x04{"name":"f.txt","size":1}\x03\n' in proc.stdout
    assert Path(execution.artifacts / "f.txt").read_text() == "x"
