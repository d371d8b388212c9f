"""`shoal validate` and `shoal compile`: exit codes, one line per problem, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from shoal.cli import _workflow_cmds

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "testkube"

WORKFLOW = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: hello}
spec:
  config:
    who: {type: string, default: world}
  use: [{name: greet}]
  steps:
  - name: say
    shell: echo hello {{ config.who }}
"""
TEMPLATE = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflowTemplate
metadata: {name: greet}
spec:
  container: {image: alpine:3}
"""


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    _workflow_cmds.register(app)
    return app


def _run(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def test_validate_accepts_valid_files_and_knows_templates_of_other_files(
    app: typer.Typer, tmp_path: Path
) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    (tmp_path / "tpl.yaml").write_text(TEMPLATE)
    code, out, _ = _run(app, "validate", str(tmp_path / "wf.yaml"), str(tmp_path / "tpl.yaml"))
    assert code == 0 and "2 documents valid" in out
    code, _, err = _run(app, "validate", str(tmp_path / "wf.yaml"))
    assert code == 2
    assert (
        err.strip()
        == f"{tmp_path / 'wf.yaml'}:7:16: spec.use[0].name: template 'greet' not found in the given files"
    )


def test_validate_reports_one_line_per_problem(app: typer.Typer, tmp_path: Path) -> None:
    bad = WORKFLOW.replace("shell: echo", "shel: echo").replace("  use: [{name: greet}]\n", "")
    (tmp_path / "bad.yaml").write_text(bad + "  - name: two\n    retry: {count: many}\n    shell: x\n")
    code, _, err = _run(app, "validate", str(tmp_path / "bad.yaml"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        file, lineno, col, rest = line.split(":", 3)
        assert (
            file.endswith("bad.yaml")
            and lineno.isdigit()
            and col.isdigit()
            and rest.startswith(" spec.steps[")
        )


def test_validate_the_corpus(app: typer.Typer) -> None:
    code, _, err = _run(app, "validate", str(CORPUS / "templates"), str(CORPUS / "workflows"))
    # the only problem: a workflow whose template exists nowhere (it is an expected failure)
    assert code == 2
    assert err.count("\n") == 1 and "some-non-existant-template-name" in err


def test_compile_prints_the_plan(app: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW + "---\n" + TEMPLATE)
    code, out, err = _run(app, "compile", str(tmp_path / "wf.yaml"), "--config", "who=$(rm -rf /)")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["workflow"] == "hello"
    say = next(s for s in plan["stages"].values() if s["name"] == "say")
    assert say["shell"] == "echo hello $(rm -rf /)"
    assert plan["containers"][0]["image"] == "alpine:3"
    assert len(plan["context"]["id"]) == 24
    code, out, _ = _run(app, "compile", str(tmp_path / "wf.yaml"), "-o", "yaml")
    assert code == 0 and yaml.safe_load(out)["workflow"] == "hello"


def test_compile_with_template_dir_and_name(app: typer.Typer) -> None:
    code, out, err = _run(
        app,
        "compile",
        str(CORPUS / "workflows" / "showcase.yaml"),
        "--name",
        "k6-distributed",
        "--template-dir",
        str(CORPUS / "templates"),
        "--config",
        "workers=5",
    )
    assert code == 0, err
    plan = json.loads(out)
    parallel = next(s for s in plan["stages"].values() if s["kind"] == "parallel")
    assert parallel["spec"]["parallel"]["count"] == 5


def test_compile_needs_a_name_when_the_file_has_several(app: typer.Typer) -> None:
    code, _, err = _run(app, "compile", str(CORPUS / "workflows" / "showcase.yaml"))
    assert code == 2 and "choose one with --name" in err
    code, _, err = _run(app, "compile", str(CORPUS / "workflows" / "showcase.yaml"), "--name", "nope")
    assert code == 2 and "no workflow named 'nope'" in err


def test_compile_reports_resolution_failures(app: typer.Typer) -> None:
    code, _, err = _run(
        app,
        "compile",
        str(CORPUS / "workflows" / "edge-cases-expected-fails.yaml"),
        "--name",
        "expected-fail-volume-not-mounted",
    )
    assert code == 2 and "'missing-volume'" in err and err.count("\n") == 1


@pytest.mark.parametrize("content", [b"\xff\xfe\x00bad", b"a: [", b"- 1\n- 2\n", b"kind: TestWorkflow\n"])
def test_garbage_never_gives_a_traceback(app: typer.Typer, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(content)
    for command in ("validate", "compile"):
        code, _, err = _run(app, command, str(path))
        assert code == 2, err
        assert err.strip()


def test_bad_config_argument_and_missing_file(app: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW + "---\n" + TEMPLATE)
    code, _, err = _run(app, "compile", str(tmp_path / "wf.yaml"), "--config", "novalue")
    assert code == 2 and "KEY=VALUE" in err
    code, _, err = _run(app, "validate", str(tmp_path / "missing.yaml"))
    assert code == 2 and "no such file" in err


def test_unexpected_errors_exit_70(app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shoal.workflow

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kaput")

    monkeypatch.setattr(shoal.workflow, "compile_workflow", boom)
    (tmp_path / "wf.yaml").write_text(WORKFLOW + "---\n" + TEMPLATE)
    code, _, err = _run(app, "compile", str(tmp_path / "wf.yaml"))
    assert code == 70 and err.strip() == "shoal: internal error: RuntimeError: kaput"
