from __future__ import annotations

import tarfile
from pathlib import Path

from tests.execution.toolkit.toolkit_helpers import Execution

JUNIT = '<testsuite><testcase name="a" time="0.5"/><testcase name="b"><failure/></testcase></testsuite>'


def _tree(data: Path) -> None:
    (data / "reports" / "sub").mkdir(parents=True)
    (data / "reports" / "a.txt").write_text("alpha")
    (data / "reports" / "sub" / "junit.xml").write_text(JUNIT)
    (data / "reports" / "sub" / "b.log").write_text("bb")


def test_relative_globs_keep_relative_names_and_emit_markers(execution: Execution) -> None:
    _tree(execution.data)
    res = execution.run("artifacts", {"paths": ["**/*"], "workingDir": "/data/reports"})
    assert res.code == 0, res.output
    names = sorted(m["name"] for m in res.named("artifact"))
    assert names == ["a.txt", "sub/b.log", "sub/junit.xml"]
    assert (execution.artifacts / "sub" / "b.log").read_text() == "bb"
    assert {m["name"]: m["size"] for m in res.named("artifact")}["a.txt"] == 5
    reports = res.named("report")
    assert reports == [
        {
            "kind": "junit",
            "file": "sub/junit.xml",
            "summary": {"tests": 2, "passed": 1, "failed": 1, "skipped": 0, "errored": 0, "duration": 500},
        }
    ]
    assert all(ref == "rstage" for ref, _, _ in res.markers)


def test_absolute_patterns_are_named_from_the_common_root(execution: Execution) -> None:
    _tree(execution.data)
    res = execution.run("artifacts", {"paths": ["/data/reports/sub/*.log", "/data/reports/a.txt"]})
    assert res.code == 0, res.output
    assert sorted(m["name"] for m in res.named("artifact")) == ["reports/a.txt", "reports/sub/b.log"]


def test_files_outside_the_volumes_are_refused(execution: Execution, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("do not take")
    (execution.data / "link.txt").symlink_to(secret)
    (execution.data / "ok.txt").write_text("ok")
    res = execution.run("artifacts", {"paths": ["/data/*.txt", str(secret)]})
    assert res.code == 0, res.output
    assert [m["name"] for m in res.named("artifact")] == ["ok.txt"]
    assert not (execution.artifacts / "link.txt").exists()
    assert "outside the execution's volumes" in res.text


def test_the_toolkit_state_dir_is_never_collected(execution: Execution) -> None:
    res = execution.run(
        "artifacts",
        {"paths": ["**/*"]},
        env={"SHOAL_MOUNTS": f'{{"/data": "{execution.root}"}}'},
        cwd=execution.root,
    )
    assert res.code == 0, res.output
    assert not any("plan.json" in m["name"] for m in res.named("artifact"))


def test_compress_packs_one_gzip_tar_with_suffix_rules(execution: Execution) -> None:
    _tree(execution.data)
    res = execution.run(
        "artifacts", {"paths": ["**/*"], "workingDir": "/data/reports", "compress": {"name": "bundle.tar"}}
    )
    assert res.code == 0, res.output
    [marker] = res.named("artifact")
    assert marker["name"] == "bundle.tar.gz"
    archive = execution.artifacts / "bundle.tar.gz"
    assert marker["size"] == archive.stat().st_size
    with tarfile.open(archive, "r:gz") as tar:
        assert sorted(tar.getnames()) == ["a.txt", "sub/b.log", "sub/junit.xml"]
    assert [r["file"] for r in res.named("report")] == ["sub/junit.xml"]


def test_no_match_passes_with_a_message(execution: Execution) -> None:
    res = execution.run("artifacts", {"paths": ["nothing/**"]})
    assert res.code == 0
    assert "No artifacts found." in res.text
    assert res.named("artifact") == []
