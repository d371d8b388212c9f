"""Steps run one after another in the sandbox, see /data, /tmp and /testkube from the workspace, and
every event lands in events.jsonl with contiguous seqs; the final document has Testkube's shape."""

from __future__ import annotations

import json
from pathlib import Path

from shoal.execution._local import Workspace

from .local_helpers import logs, run, steps_by_name


def test_steps_share_the_workspace_and_the_result_has_testkube_shape(tmp_path: Path) -> None:
    outcome, events = run(
        {
            "steps": [
                {"name": "write", "shell": "echo one > /data/a && echo tmp > /tmp/t && echo out"},
                {"name": "read", "shell": "cat /data/a /tmp/t && ls -d /testkube /.shoal"},
                {"name": "fail", "shell": "echo boom; exit 3"},
                {"name": "after", "shell": "echo never"},
            ]
        },
        tmp_path,
    )
    assert outcome.status == "failed"
    steps = steps_by_name(outcome)
    assert [s["status"] for s in steps.values()] == ["passed", "passed", "failed", "skipped"]
    assert steps["fail"]["exitCode"] == 3
    for step in list(steps.values())[:3]:
        assert step["queuedAt"] <= step["startedAt"] <= step["finishedAt"]
    lines = logs(events)
    assert lines == ["out", "one", "tmp", "/.shoal", "/testkube", "boom"]
    doc = outcome.execution
    assert {"id", "name", "signature", "result", "output", "reports", "artifacts"} <= set(doc)
    assert doc["result"]["predictedStatus"] == "failed"

    ws = Workspace(Path(doc["workspace"]))
    assert (ws.data / "a").read_text() == "one\n"
    stored = [json.loads(line) for line in ws.events.read_text().splitlines()]
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    assert [e["seq"] for e in stored] == [e.seq for e in events]
    assert json.loads(ws.execution_file.read_text())["result"]["status"] == "failed"
    assert not Path("/data/a").exists()


def test_step_outputs_and_results_directories_pass_between_steps(tmp_path: Path) -> None:
    outcome, _ = run(
        {
            "steps": [
                {"name": "produce", "id": "produce", "shell": "echo 42 > /testkube/outputs/answer"},
                {"name": "consume", "shell": 'test "{{ step.produce.outputs.answer }}" = 42'},
            ]
        },
        tmp_path,
    )
    assert outcome.status == "passed", outcome.execution["result"]
    assert {
        "ref": outcome.execution["signature"][0]["ref"],
        "name": "outputs",
        "value": {"answer": "42"},
    } in (outcome.execution["output"])
