from __future__ import annotations

from pathlib import Path

import pytest

from tests.execution.toolkit.git_fixtures import Repo, dumb_http, make_repo
from tests.execution.toolkit.toolkit_helpers import Execution


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path)


def test_transient_server_errors_are_retried(execution: Execution, repo: Repo) -> None:
    with dumb_http(repo.path.parent, fail_first=2) as server:
        res = execution.run("git", {"uri": f"{server.url}/repo.git", "retry": {"count": 4, "delay": "1ms"}})
    assert res.code == 0, res.output
    assert res.text.count("retrying") == 2
    assert (execution.data / "repo" / "a.txt").read_text() == "second"


def test_retries_stop_after_the_count(execution: Execution, repo: Repo) -> None:
    with dumb_http(repo.path.parent, fail_first=100) as server:
        res = execution.run("git", {"uri": f"{server.url}/repo.git", "retry": {"count": 2, "delay": "1ms"}})
    assert res.code == 1
    assert "attempt 2 of 2" in res.text
    assert not any((execution.data / "repo").iterdir())
    assert [p.name for p in execution.data.iterdir()] == ["repo"]  # no scratch clone left behind


def test_basic_credentials_from_env_never_appear(execution: Execution, repo: Repo) -> None:
    token = "s3cr3t-t0ken-value"
    with dumb_http(repo.path.parent, basic=("bob", token)) as server:
        res = execution.run(
            "git",
            {"uri": f"{server.url}/repo.git"},
            env={"TK_GIT_USERNAME": "bob", "TK_GIT_TOKEN": token},
        )
    assert res.code == 0, res.output
    assert token not in res.output
    dest = execution.data / "repo"
    assert (dest / "a.txt").exists()
    assert token not in (dest / ".git" / "config").read_text()


def test_header_auth_sends_a_bearer_token(execution: Execution, repo: Repo) -> None:
    token = "header-token-123"
    with dumb_http(repo.path.parent, bearer=token) as server:
        res = execution.run("git", {"uri": f"{server.url}/repo.git", "token": token, "authType": "header"})
    assert res.code == 0, res.output
    assert f"Bearer {token}" in server.auth_headers
    assert token not in res.output
    assert token not in (execution.data / "repo" / ".git" / "config").read_text()


def test_missing_credentials_fail_without_retry(execution: Execution, repo: Repo) -> None:
    with dumb_http(repo.path.parent, basic=("bob", "pw")) as server:
        res = execution.run("git", {"uri": f"{server.url}/repo.git", "retry": {"count": 3, "delay": "1ms"}})
    assert res.code == 1
    assert "retrying" not in res.text
