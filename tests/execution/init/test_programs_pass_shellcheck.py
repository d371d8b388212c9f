"""lib.sh and generated programs are clean for `shellcheck -s sh`; marker bytes match the Python encoder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from shoal.execution._initgen import LIB_PATH, init_files
from shoal.execution._markers import format_marker
from shoal.workflow._plan import EnvVar, Plan

from ._plans import BUSYBOX, SHELLS, build, env, group, op, run, shell

pytestmark = pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")


def rich_plan() -> Plan:
    return build(
        group(
            "root",
            shell(
                "s1", "echo {{ shellquote(env.X) }} $HOME 'q'", id="one", env=env(X="a b", Y="{{ env.X }}!")
            ),
            group(
                "g",
                run("r1", ["sh", "-c"], ["echo {{ step.one.outputs.k }}"], working_dir="/tmp/{{ env.X }}"),
                shell(
                    "s2", "exit 1", negative=True, retry=(2, "self.passed || len(env.X) > 3"), timeout_ms=1500
                ),
                op("d", "delay", spec={"ms": 10}),
                timeout_ms=5000,
                paused=True,
            ),
            op("git", "git", condition='env.MODE == "x" && g', env=[EnvVar("T", None, value_from={"a": 1})]),
            shell("bad", "echo {{ tojson(env.X) }}", optional=True),
            shell("files", "echo {{ join(glob('*.txt'), ' ') }} {{ file('a') }} {{ 1 / int(env.N) }}"),
            group("neg", shell("n1", "exit 1"), negative=True, condition="always"),
        ),
        cuts=["git"],
    )


def test_library_and_generated_programs_are_clean(tmp_path: Path) -> None:
    paths = [str(LIB_PATH)]
    for rel, content in init_files(rich_plan()).items():
        (tmp_path / rel).write_text(content)
        paths.append(str(tmp_path / rel))
    proc = subprocess.run(["shellcheck", "-s", "sh", *paths], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("shell_name", sorted(SHELLS))
def test_library_markers_are_the_python_encoding(shell_name: str, tmp_path: Path) -> None:
    details = 'a"b\\c\nd\te\x01\x7f\x08\x0c\ré'
    script = f'_sh_sourced=1; . {LIB_PATH}\n_sh_m r1 start \'{{"ts":5}}\'\n_sh_execm r2 -1 "$DETAILS" 3\n'
    out = subprocess.run(
        [*SHELLS[shell_name], "-c", script],
        env={"PATH": "/usr/bin:/bin", "SHOAL_BUSYBOX": BUSYBOX, "DETAILS": details},
        capture_output=True,
        check=True,
    ).stdout
    assert out == format_marker("r1", "start", {"ts": 5}) + format_marker(
        "r2", "execution", {"code": -1, "details": details, "iteration": 3}
    )


def test_format_marker_rejects_control_characters_in_refs() -> None:
    with pytest.raises(ValueError):
        format_marker("a\x03b", "start", {})
