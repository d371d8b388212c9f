"""With a Plan, group statuses come from the stored result expressions, virtual groups included."""

from __future__ import annotations

import pytest

from shoal.workflow._plan import Plan, SignatureNode, Stage
from shoal.workflow._status import ExecutionState, evaluate_result
from tests.workflow.status.status_helpers import Stream


def _plan() -> Plan:
    # root[ v(virtual)[a, b], o(optional)[c], d ]  — the signature lifts a and b out of v.
    stages = {
        "root": Stage(ref="root", kind="group", children=["v", "o", "d"], result="v&&d"),
        "v": Stage(ref="v", kind="group", parent="root", virtual=True, children=["a", "b"], result="a&&b"),
        "a": Stage(ref="a", kind="shell", parent="v", name="A"),
        "b": Stage(ref="b", kind="shell", parent="v", name="B"),
        "o": Stage(ref="o", kind="group", parent="root", name="O", optional=True, children=["c"], result="c"),
        "c": Stage(ref="c", kind="shell", parent="o", name="C"),
        "d": Stage(ref="d", kind="shell", parent="root", name="D"),
    }
    signature = [
        SignatureNode(ref="a", name="A"),
        SignatureNode(ref="b", name="B"),
        SignatureNode(ref="o", name="O", optional=True, children=[SignatureNode(ref="c", name="C")]),
        SignatureNode(ref="d", name="D"),
    ]
    return Plan(workflow="w", root="root", stages=stages, signature=signature, containers=[])


def _run(b: str, c: str) -> ExecutionState:
    state = ExecutionState.for_plan(_plan())
    stream = (
        Stream()
        .start("root", 0)
        .start("v", 0)
        .run("a", "passed", 0)
        .run("b", b, 1)
        .start("o", 2)
        .run("c", c, 2)
        .run("d", "passed", 3)
        .end("root", "passed", 4)  # the root's own marker does not decide: its expression does
    )
    state.apply_all(stream.events)
    return state


def test_virtual_group_failure_reaches_the_root() -> None:
    state = _run(b="failed", c="passed")
    assert state.step_status("v").value == "failed"
    assert state.result().status.value == "failed"
    assert "v" not in state.result().steps  # virtual groups are not in the signature


def test_optional_group_failure_stays_inside() -> None:
    state = _run(b="passed", c="failed")
    result = state.result()
    assert result.steps["o"].status.value == "failed"
    assert result.status.value == "passed"
    assert result.predicted_status.value == "failed"


@pytest.mark.parametrize(
    ("expression", "values", "expected"),
    [
        ("true", {}, True),
        ("false", {}, False),
        ("", {}, True),
        ("a&&b", {"a": True, "b": False}, False),
        ("!a||!b", {"a": True, "b": False}, True),
        ("!a||!b", {"a": True, "b": True}, False),
        ("a&&b", {}, True),  # unknown refs are not finished yet: true
        ("a || b && c", {"a": True, "b": False, "c": True}, True),  # one precedence, left to right
        ("!(a&&b)", {"a": True, "b": True}, False),
    ],
)
def test_result_expressions(expression: str, values: dict[str, bool], expected: bool) -> None:
    assert evaluate_result(expression, values) is expected


@pytest.mark.parametrize("expression", ["a&&", "(a", "a b", "&&a", "a)"])
def test_broken_result_expressions_are_errors(expression: str) -> None:
    with pytest.raises(ValueError):
        evaluate_result(expression, {})
