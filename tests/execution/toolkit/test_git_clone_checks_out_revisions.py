from __future__ import annotations

from pathlib import Path

import pytest

from tests.execution.toolkit.git_fixtures import Repo, git, make_repo
from tests.execution.toolkit.toolkit_helpers import Execution


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path)


def test_default_branch_lands_in_data_repo(execution: Execution, repo: Repo) -> None:
    res = execution.run("git", {"uri": repo.uri})
    assert res.code == 0, res.output
    assert (execution.data / "repo" / "a.txt").read_text() == "second"
    assert not (execution.data / "repo" / "f.txt").exists()


@pytest.mark.parametrize(
    ("revision", "file", "content"),
    [("feature", "f.txt", "feature"), ("v1", "a.txt", "first")],
)
def test_branch_and_tag_revisions(
    execution: Execution, repo: Repo, revision: str, file: str, content: str
) -> None:
    res = execution.run("git", {"uri": repo.uri, "revision": revision, "mountPath": "/data/checkout"})
    assert res.code == 0, res.output
    assert (execution.data / "checkout" / file).read_text() == content


def test_commit_sha_revision(execution: Execution, repo: Repo) -> None:
    res = execution.run("git", {"uri": repo.uri, "revision": repo.first_sha})
    assert res.code == 0, res.output
    assert git(execution.data / "repo", "rev-parse", "HEAD") == repo.first_sha
    assert (execution.data / "repo" / "a.txt").read_text() == "first"


def test_sparse_checkout_in_cone_mode_keeps_only_the_paths(execution: Execution, repo: Repo) -> None:
    res = execution.run("git", {"uri": repo.uri, "paths": ["src/app"], "cone": True})
    assert res.code == 0, res.output
    dest = execution.data / "repo"
    assert (dest / "src" / "app" / "x.py").exists()
    assert not (dest / "docs").exists()
    assert (dest / "a.txt").exists()  # cone mode always keeps top-level files


def test_sparse_checkout_without_cone_uses_patterns(execution: Execution, repo: Repo) -> None:
    res = execution.run("git", {"uri": repo.uri, "paths": ["/docs/"], "cone": False})
    assert res.code == 0, res.output
    dest = execution.data / "repo"
    assert (dest / "docs" / "readme.md").exists()
    assert not (dest / "a.txt").exists()
    assert not (dest / "src").exists()


def test_unknown_revision_fails_without_retrying(execution: Execution, repo: Repo) -> None:
    res = execution.run(
        "git", {"uri": repo.uri, "revision": "no-such-branch", "retry": {"count": 3, "delay": "1ms"}}
    )
    assert res.code == 1
    assert "attempt 1 of 3" in res.text
    assert "retrying" not in res.text


def test_destination_may_already_hold_files(execution: Execution, repo: Repo) -> None:
    dest = execution.data / "repo"
    (dest / "config").mkdir(parents=True)
    (dest / "config" / "mounted.yaml").write_text("kept")
    res = execution.run("git", {"uri": repo.uri})
    assert res.code == 0, res.output
    assert (dest / "a.txt").read_text() == "second"
    assert (dest / "config" / "mounted.yaml").read_text() == "kept"
    assert not [p for p in execution.data.iterdir() if p.name.startswith(".shoal-clone-")]
