"""`shoal run -o json`: stdout carries only the final execution (Testkube's shape), logs go to
stderr; exit 0 only when it passed, 1 when it failed, 2 for invalid input, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from .run_helpers import execution, shoal_run, write_workflow


def test_passing_workflow_exits_0_with_the_execution_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = write_workflow(
        tmp_path / "wf.yaml",
        "  - name: hello\n    shell: echo hello-from-step\n  - name: second\n    shell: 'true'\n",
    )
    code, out, err = shoal_run([str(wf), "-o", "json"], tmp_path / "home", monkeypatch)
    assert code == 0, err
    doc = execution(out)
    assert "hello-from-step" in err and "hello-from-step" not in out
    result = doc["result"]
    assert result["status"] == result["predictedStatus"] == "passed"
    assert [n["name"] for n in doc["signature"]] == ["hello", "second"]
    for node in doc["signature"]:
        step = result["steps"][node["ref"]]
        assert step["status"] == "passed" and step["exitCode"] == 0
        assert {"queuedAt", "startedAt", "finishedAt"} <= set(step)
    assert doc["output"] == [] and doc["reports"] == [] and doc["artifacts"] == []
    assert doc["name"] == "wf-1"


def test_failing_workflow_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wf = write_workflow(tmp_path / "wf.yaml", "  - name: bad\n    shell: exit 4\n")
    code, out, _ = shoal_run([str(wf), "-o", "json"], tmp_path / "home", monkeypatch)
    assert code == 1
    doc = execution(out)
    step = doc["result"]["steps"][doc["signature"][0]["ref"]]
    assert (doc["result"]["status"], step["status"], step["exitCode"]) == ("failed", "failed", 4)


def test_invalid_workflow_exits_2_with_located_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = write_workflow(tmp_path / "wf.yaml", "  - name: bad\n    shel: echo typo\n")
    code, out, err = shoal_run([str(wf)], tmp_path / "home", monkeypatch)
    assert code == 2
    assert out == ""
    assert f"{wf}:8:5: spec.steps[0].shel" in err
    assert "Traceback" not in err


def test_missing_file_and_bad_config_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = shoal_run([str(tmp_path / "nope.yaml")], tmp_path / "home", monkeypatch)
    assert code == 2 and "nope.yaml" in err
    wf = write_workflow(tmp_path / "wf.yaml", "  - shell: 'true'\n")
    code, _, err = shoal_run([str(wf), "--config", "novalue"], tmp_path / "home", monkeypatch)
    assert code == 2 and "KEY=VALUE" in err


def test_missing_template_is_a_failed_execution_not_invalid_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = write_workflow(tmp_path / "wf.yaml", "  - name: t\n    template:\n      name: not-there\n")
    code, out, _ = shoal_run([str(wf), "-o", "json"], tmp_path / "home", monkeypatch)
    assert code == 1
    doc = execution(out)
    assert doc["result"]["status"] == "failed"
    assert doc["result"]["initialization"]["status"] == "failed"
    assert "not-there" in doc["result"]["initialization"]["errorMessage"]


def test_pretty_output_has_step_headers_and_a_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = write_workflow(
        tmp_path / "wf.yaml",
        "  - name: Greet\n    shell: echo hi-there\n  - name: Sad\n    optional: true\n    shell: exit 1\n",
    )
    code, out, _ = shoal_run([str(wf)], tmp_path / "home", monkeypatch)
    assert code == 0
    assert out.index("▶ Greet") < out.index("hi-there") < out.index("■ Greet: passed")
    assert "■ Sad: failed" in out
    summary = out[out.index("■ Sad: failed") :]
    assert "Greet" in summary and "passed" in summary.splitlines()[-1]


def test_artifacts_dir_receives_collected_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wf = write_workflow(
        tmp_path / "wf.yaml",
        "  - name: make\n    shell: mkdir -p /data/out && echo x > /data/out/a.txt\n"
        "  - name: save\n    artifacts:\n      workingDir: /data/out\n      paths: ['*.txt']\n",
    )
    target = tmp_path / "collected"
    code, out, err = shoal_run(
        [str(wf), "-o", "json", "--artifacts-dir", str(target)], tmp_path / "h", monkeypatch
    )
    assert code == 0, err
    assert (target / "a.txt").read_text() == "x\n"
    assert execution(out)["artifacts"][0]["name"] == "a.txt"
    assert execution(out)["artifacts"][0]["size"] == 2
