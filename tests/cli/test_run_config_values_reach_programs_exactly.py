"""--config values holding quotes, $(), backticks, newlines or ';' reach programs as the exact
string when the workflow uses shellquote (end to end, through the init program and the sandbox)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .run_helpers import execution, shoal_run, write_workflow

NASTY = [
    'it\'s "quoted"',
    "$(touch /data/pwned) `touch /data/pwned2`",
    "a;b && c | d",
    "two\nlines",
    "  spaces  ",
    "$HOME ${PATH} \\ \\n",
]


@pytest.mark.parametrize("value", NASTY)
def test_value_reaches_the_program_unchanged(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = write_workflow(
        tmp_path / "wf.yaml",
        "  - name: write\n    shell: printf '%s' {{ shellquote(config.value) }} > /data/got\n"
        "  - name: check\n    shell: test ! -e /data/pwned && test ! -e /data/pwned2 && cat /data/got\n",
        extra="  config:\n    value:\n      type: string\n",
    )
    code, out, err = shoal_run(
        [str(wf), "-o", "json", "--config", f"value={value}"], tmp_path / "h", monkeypatch
    )
    assert code == 0, err
    doc = execution(out)
    data = Path(doc["workspace"]) / "data" / "got"
    assert data.read_text() == value
