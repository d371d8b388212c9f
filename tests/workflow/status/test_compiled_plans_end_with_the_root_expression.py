"""Compiled Plans: the marker sequence the init program prints for given exit codes, replayed through
ExecutionState built from the Plan, ends with the status the root's result expression gives."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from shoal.workflow import compile_workflow
from shoal.workflow._plan import Plan
from shoal.workflow._status import ExecutionEvent, ExecutionState, evaluate_result

WORKFLOW = """
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: shapes}
spec:
  steps:
  - name: build
    shell: exit $BUILD
  - name: checks
    optional: true
    steps:
    - name: lint
      shell: exit $LINT
    - name: audit
      shell: "true"
  - name: must fail
    negative: true
    steps:
    - name: bad input
      shell: exit $BAD
    - name: other
      optional: true
      shell: "true"
  - steps:
    - name: v1
      shell: "true"
    - name: v2
      shell: exit $V2
  - name: last
    condition: always
    shell: "true"
"""


def _plan() -> Plan:
    return compile_workflow(yaml.safe_load(WORKFLOW)).plan


def _simulate(plan: Plan, codes: dict[str, int]) -> list[ExecutionEvent]:
    """What the init program prints (docs/internal/init-protocol.md §3.1, §4), as events."""
    status: dict[str, str] = {}
    events: list[ExecutionEvent] = []

    def emit(ts: int, **data: Any) -> None:
        events.append(ExecutionEvent(seq=len(events) + 1, ts=ts, type="step", **data))

    def success() -> dict[str, bool]:
        return {ref: s in ("passed", "skipped") for ref, s in status.items()}

    def skip(ref: str, ts: int) -> None:
        for child in plan.stages[ref].children:
            skip(child, ts)
        if ref not in status:
            status[ref] = "skipped"
            emit(ts, ref=ref, status="skipped")

    ts = 1_000
    for action in [a for c in plan.containers for a in c.actions]:
        stage = plan.stages[action.ref]
        ts += 10
        if action.ref in status:
            continue
        if action.op == "start":
            if not evaluate_result(stage.condition, success()):
                skip(action.ref, ts)
                continue
            emit(ts, ref=action.ref, status="running")
        elif action.op == "exec":
            code = codes.get(stage.name, 0)
            failed = (code != 0) != stage.negative
            emit(ts, ref=action.ref, exit_code=code, details="", iteration=1)
            status[action.ref] = "failed" if failed else "passed"
            emit(ts, ref=action.ref, status=status[action.ref])
        else:
            passed = evaluate_result(stage.result or "true", success())
            status[action.ref] = "passed" if passed else "failed"
            emit(ts, ref=action.ref, status=status[action.ref])
    return events


@pytest.mark.parametrize(
    ("codes", "expected_status", "expected_predicted"),
    [
        ({}, "failed", "failed"),  # the negative group's children all pass: the group fails
        ({"bad input": 1}, "passed", "failed"),  # negative group passes; heuristic sees the failed child
        ({"bad input": 1, "lint": 1}, "passed", "failed"),  # failure inside the optional group stays there
        ({"bad input": 1, "build": 2}, "failed", "failed"),
        ({"bad input": 1, "v2": 1}, "failed", "failed"),
    ],
)
def test_compiled_plan(codes: dict[str, int], expected_status: str, expected_predicted: str) -> None:
    plan = _plan()
    state = ExecutionState.for_plan(plan)
    state.apply_all(_simulate(plan, codes))
    result = state.result()
    assert state.is_finished
    assert result.status.value == expected_status
    assert result.predicted_status.value == expected_predicted
    assert set(result.steps) == {n.ref for n in _walk(plan)}
    assert all(step.status.is_finished for step in result.steps.values())


def test_after_a_build_failure_only_the_always_step_runs() -> None:
    plan = _plan()
    state = ExecutionState.for_plan(plan)
    state.apply_all(_simulate(plan, {"build": 1, "bad input": 1}))
    names = {stage.ref: stage.name for stage in plan.stages.values()}
    by_name = {names[ref]: step.status.value for ref, step in state.result().steps.items()}
    assert by_name["build"] == "failed"
    assert by_name["last"] == "passed"
    assert by_name["v1"] == by_name["v2"] == by_name["checks"] == "skipped"


def _walk(plan: Plan) -> list[Any]:
    out: list[Any] = []
    stack = list(plan.signature)
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.children)
    return out
