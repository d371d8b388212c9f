"""Roles and environment scoping: an agent token of A sees nothing of B; a viewer cannot act."""

from __future__ import annotations

import pytest

from shoal.client import Client, ClientError
from tests.harness import RunningServer

WF = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: smoke}
spec:
  steps: [{shell: "true"}]
"""


def _status(call: object) -> int:
    with pytest.raises(ClientError) as err:
        call()  # type: ignore[operator]
    assert err.value.status is not None
    return err.value.status


def test_agent_token_of_one_environment_cannot_reach_another(server: RunningServer) -> None:
    with server.client() as admin:
        admin.create_environment("a")
        admin.create_environment("b")
        for env in ("a", "b"):
            with server.client(environment=env) as c:
                c.apply(WF)
        agent_token = admin.create_token("agent", environment="a")
    with Client(server.url, agent_token, "b") as in_b:
        assert _status(lambda: in_b.workflows()) == 404
        assert _status(lambda: in_b.executions()) == 404
        assert _status(lambda: in_b.run("smoke")) == 404
        assert _status(lambda: in_b.apply(WF)) == 404
        assert _status(lambda: in_b.agents()) == 404
    with Client(server.url, agent_token, "a") as in_a:
        assert [w["metadata"]["name"] for w in in_a.workflows()] == ["smoke"]  # agents read their workflows
        assert _status(lambda: in_a.run("smoke")) == 403
        assert _status(lambda: in_a.apply(WF)) == 403
        assert _status(lambda: in_a.create_token("admin")) == 403
        assert [e["name"] for e in in_a.environments()] == ["a"]


def test_viewer_can_read_but_not_run_or_apply(server: RunningServer) -> None:
    with server.client() as admin:
        admin.apply(WF)
        viewer = admin.create_token("viewer", environment="default")
        runner = admin.create_token("runner", environment="default")
    with Client(server.url, viewer) as v:
        assert v.workflows()[0]["metadata"]["name"] == "smoke"
        assert v.executions()["results"] == []
        assert _status(lambda: v.run("smoke")) == 403
        assert _status(lambda: v.apply(WF)) == 403
    with Client(server.url, runner) as r:
        assert r.run("smoke")[0]["result"]["status"] == "queued"
        assert _status(lambda: r.apply(WF)) == 403


def test_missing_or_wrong_tokens_are_401(server: RunningServer) -> None:
    with Client(server.url, None) as anon:
        assert _status(lambda: anon.workflows()) == 401
    with Client(server.url, "shoal_nope") as wrong:
        assert _status(lambda: wrong.workflows()) == 401


def test_admin_token_file_is_private(server: RunningServer) -> None:
    mode = (server.home / "admin-token").stat().st_mode & 0o777
    assert mode == 0o600
