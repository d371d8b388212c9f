"""Workflows and templates stored in the control plane, through the Testkube-shaped REST paths."""

from __future__ import annotations

import pytest

from shoal.client import ClientError
from tests.harness import RunningServer

SMOKE = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: smoke
  labels: {team: qa}
spec:
  steps:
  - name: hello
    shell: echo hello
---
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflowTemplate
metadata:
  name: greet
spec:
  steps:
  - shell: echo hi
"""


def test_apply_get_list_delete_round_trip(server: RunningServer) -> None:
    with server.client() as c:
        applied = c.apply(SMOKE, "smoke.yaml")
        assert [(a["kind"], a["name"], a["changed"]) for a in applied] == [
            ("TestWorkflow", "smoke", True),
            ("TestWorkflowTemplate", "greet", True),
        ]
        assert [a["changed"] for a in c.apply(SMOKE, "smoke.yaml")] == [False, False]
        wf = c.workflow("smoke")
        assert wf["spec"]["steps"][0]["shell"] == "echo hello"
        assert [w["metadata"]["name"] for w in c.workflows("team=qa")] == ["smoke"]
        assert c.workflows("team=dev") == []
        assert [t["metadata"]["name"] for t in c.templates()] == ["greet"]
        c.delete_resource("test-workflows", "smoke")
        with pytest.raises(ClientError) as err:
            c.workflow("smoke")
        assert err.value.status == 404


def test_invalid_documents_are_refused_with_located_problems(server: RunningServer) -> None:
    bad = SMOKE.replace("shell: echo hello", "shel: echo hello")
    with server.client() as c, pytest.raises(ClientError) as err:
        c.apply(bad, "bad.yaml")
    assert err.value.status == 422
    assert any(p.startswith("bad.yaml:9:5: spec.steps[0]") and "shel" in p for p in err.value.problems), (
        err.value.problems
    )


def test_openapi_is_published(server: RunningServer) -> None:
    with server.client() as c:
        spec = c.http.get("/openapi.json").json()
    assert "/v1/test-workflows/{name}/executions" in spec["paths"]
    assert "/v1/test-workflow-executions/{execution_id}/artifact-archive" in spec["paths"]
