"""End to end: compiled workflows whose toolkit stages (parallel, services, artifacts) run through the
real local runtime and init program, sub-plans included."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from shoal.execution._local import LocalRuntime, run_plan
from shoal.execution._runtime import ExecutionJob
from shoal.workflow import compile_workflow
from shoal.workflow._status import ExecutionEvent
from tests.execution.toolkit.toolkit_helpers import Execution

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, spec: dict[str, Any]) -> tuple[str, list[ExecutionEvent]]:
    doc = {
        "apiVersion": "testworkflows.testkube.io/v1",
        "kind": "TestWorkflow",
        "metadata": {"name": "e2e"},
        "spec": spec,
    }
    events: list[ExecutionEvent] = []
    outcome = run_plan(
        ExecutionJob(execution_id="e2e", plan=compile_workflow(doc).plan),
        runtime=LocalRuntime(home=tmp_path / "home"),
        on_event=events.append,
    )
    return outcome.status, events


def _lines(events: list[ExecutionEvent]) -> list[str]:
    return [e.line for e in events if e.type == "log" and e.line is not None]


def test_parallel_workers_and_junit_artifacts(tmp_path: Path) -> None:
    spec = {
        "steps": [
            {
                "name": "fan out",
                "optional": True,  # worker 1 fails: the stage fails, the workflow goes on
                "parallel": {"count": 2, "shell": "echo hello from {{ index }}; exit {{ index }}"},
            },
            {
                "name": "report",
                "shell": "mkdir -p /data/r && echo '<testsuite><testcase name=\"a\"/></testsuite>' > /data/r/j.xml",
                "artifacts": {"workingDir": "/data/r", "paths": ["*.xml"]},
            },
        ]
    }
    status, events = _run(tmp_path, spec)
    lines = _lines(events)
    assert status == "passed", lines
    assert "[worker 0] hello from 0" in lines and "[worker 1] hello from 1" in lines
    assert "[worker 0] passed" in lines and "[worker 1] failed" in lines
    assert "1/2 workers passed" in lines
    assert [e for e in events if e.type == "artifact" and e.artifact and e.artifact["name"] == "j.xml"]
    [report] = [e.report for e in events if e.type == "report"]
    assert report is not None and report["summary"]["tests"] == 1


def test_service_is_ready_for_the_steps_and_stopped_after(tmp_path: Path) -> None:
    server = f"exec {sys.executable} -m http.server $SERVICE_PORT --bind $SERVICE_IP"
    spec = {
        "services": {
            "web": {
                "shell": server,
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
            }
        },
        "steps": [
            {
                "name": "use",
                "shell": "d=$SHOAL_DIR/state/services/web/0; busybox wget -qO- http://$(cat $d/ip):$(cat $d/port)/ | head -1",
            }
        ],
    }
    status, events = _run(tmp_path, spec)
    lines = _lines(events)
    assert status == "passed", lines
    assert "<!DOCTYPE HTML>" in lines
    assert any(line.startswith("Service web #0 stopped") for line in lines)


CHILDREN = """
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: child
  labels: {suite: smoke}
spec:
  config:
    x: {type: string}
  steps:
  - name: check
    shell: echo "child {{ config.x }}"; test "{{ config.x }}" = 0
"""


def test_execute_runs_children_from_the_bundle(execution: Execution, tmp_path: Path) -> None:
    from shoal.execution._toolkit._execute import run_execute

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "child.yaml").write_text(CHILDREN)
    spec = {
        "workflows": [
            {"selector": {"matchLabels": {"suite": "smoke"}}, "count": 2, "config": {"x": "{{ index }}"}}
        ]
    }
    env = {"SHOAL_BUNDLE": str(bundle), "SHOAL_HOME": str(tmp_path / "home"), "SHOAL_EXECUTION_ID": "parent"}
    res = execution.call(run_execute, "execute", spec, env=env)
    assert res.code == 1, res.output
    finals = {m["index"]: m["status"] for m in res.named("execute") if m["status"] in ("passed", "failed")}
    assert finals == {0: "passed", 1: "failed"}
    assert "1/2 executions passed" in res.text
