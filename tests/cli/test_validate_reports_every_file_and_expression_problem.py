"""`shoal validate` finds what compiling would find, in every file given, and refuses empty files."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from shoal.cli import build_app

BAD = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: bad}
spec:
  config:
    x: {type: string, default: "1"}
    need: {type: integer}
  steps:
  - name: a
    condition: 'confg.x == "1"'
    shell: echo ok
  - name: b
    shell: echo {{ confg.x }}
  - name: c
    condition: '((('
    shell: echo {{ config.need }}
"""


def test_expression_problems_empty_and_unreadable_files_are_all_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD)
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "junk.yaml").write_bytes(b"\xa6\xff junk")
    result = CliRunner().invoke(build_app(), ["validate", str(tmp_path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [
        f"{tmp_path}/bad.yaml:10:16: spec.steps[0].condition: unknown variable 'confg.x' at position 0 in "
        "expression 'confg.x == \"1\"'",
        f"{tmp_path}/bad.yaml:13:12: spec.steps[1].shell: unknown variable 'confg.x' at position 8 in "
        "expression 'echo {{ confg.x }}'",
        f"{tmp_path}/bad.yaml:15:16: spec.steps[2].condition: unexpected end of expression, expected a value "
        "in expression '((('",
        f"{tmp_path}/empty.yaml:1:1: expected a TestWorkflow or TestWorkflowTemplate document, found none",
        f"{tmp_path}/junk.yaml:1:1: invalid UTF-8: byte 0xa6 cannot start or continue a character (the file "
        "must be UTF-8 text)",
    ]


def test_required_config_without_a_value_is_not_a_document_problem(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(BAD.replace("confg.x", "config.x").replace("'((('", "always"))
    result = CliRunner().invoke(build_app(), ["validate", str(tmp_path / "ok.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "1 document valid"
