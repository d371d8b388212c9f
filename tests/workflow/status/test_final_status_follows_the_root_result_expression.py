"""Table of whole executions: the final status, Testkube's predicted status and every step status."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shoal.workflow._plan import SignatureNode
from tests.workflow.status.status_helpers import ROOT, Stream, node, replay, statuses


@dataclass
class Case:
    id: str
    signature: list[SignatureNode]
    stream: Stream
    status: str
    predicted: str
    steps: dict[str, str]


def _begin() -> Stream:
    return (
        Stream().status("queued", 0).status("running", 1).init("running", 1).init("passed", 2).start(ROOT, 2)
    )


CASES = [
    Case(
        "all-passed",
        [node("a"), node("b")],
        _begin().run("a", "passed", 3).run("b", "passed", 5).end(ROOT, "passed", 7),
        "passed",
        "passed",
        {"a": "passed", "b": "passed"},
    ),
    Case(
        "skipped-counts-as-success",
        [node("a"), node("b")],
        _begin().run("a", "passed", 3).end("b", "skipped", 4).end(ROOT, "passed", 4),
        "passed",
        "passed",
        {"a": "passed", "b": "skipped"},
    ),
    Case(
        "failed-step-fails-and-later-steps-skip",
        [node("a"), node("b")],
        _begin().run("a", "failed", 3).end("b", "skipped", 4).end(ROOT, "failed", 4),
        "failed",
        "failed",
        {"a": "failed", "b": "skipped"},
    ),
    Case(
        "optional-leaf-failure-is-excluded",
        [node("a", optional=True), node("b")],
        _begin().run("a", "failed", 3).run("b", "passed", 5).end(ROOT, "passed", 6),
        "passed",
        "passed",
        {"a": "failed", "b": "passed"},
    ),
    Case(
        # Difference 1: a failure inside an optional group stays inside it. Testkube's heuristic only
        # looks at each step's own `optional` flag, so the failed (non-optional) child predicts failed.
        "failure-inside-optional-group",
        [node("g", node("g1"), node("g2"), optional=True), node("b")],
        _begin()
        .start("g", 3)
        .run("g1", "failed", 3)
        .end("g2", "skipped", 4)
        .end("g", "failed", 4)
        .run("b", "passed", 5)
        .end(ROOT, "passed", 6),
        "passed",
        "failed",
        {"g": "failed", "g1": "failed", "g2": "skipped", "b": "passed"},
    ),
    Case(
        # Difference 2: a negative group passes because one of its children failed; Testkube's
        # heuristic sees the failed child and predicts failed.
        "negative-group-passes-when-a-child-fails",
        [node("n", node("n1"), negative=True)],
        _begin().start("n", 3).run("n1", "failed", 3).end("n", "passed", 4).end(ROOT, "passed", 4),
        "passed",
        "failed",
        {"n": "passed", "n1": "failed"},
    ),
    Case(
        "negative-group-fails-when-every-child-passes",
        [node("n", node("n1"), node("n2"), negative=True)],
        _begin()
        .start("n", 3)
        .run("n1", "passed", 3)
        .run("n2", "passed", 4)
        .end("n", "failed", 5)
        .end(ROOT, "failed", 5),
        "failed",
        "failed",
        {"n": "failed", "n1": "passed", "n2": "passed"},
    ),
    Case(
        "negative-leaf-is-inverted-by-the-init-program",
        [node("a", negative=True)],
        _begin().run("a", "passed", 3, code=1).end(ROOT, "passed", 4),
        "passed",
        "passed",
        {"a": "passed"},
    ),
    Case(
        # A timed-out step fails the execution. Testkube's heuristic has no rule for `timeout`: it
        # is neither failed nor passed, so it predicts aborted.
        "top-level-timeout-fails",
        [node("a"), node("b")],
        _begin().run("a", "timeout", 3).end("b", "skipped", 4).end(ROOT, "failed", 4),
        "failed",
        "aborted",
        {"a": "timeout", "b": "skipped"},
    ),
    Case(
        "timeout-of-an-optional-step-passes",
        [node("a", optional=True), node("b")],
        _begin().run("a", "timeout", 3, took=5).run("b", "passed", 8).end(ROOT, "passed", 9),
        "passed",
        "passed",
        {"a": "timeout", "b": "passed"},
    ),
    Case(
        "timeout-inside-a-group-fails-the-group",
        [node("g", node("g1"), node("g2"))],
        _begin()
        .start("g", 3)
        .run("g1", "timeout", 3)
        .end("g2", "skipped", 4)
        .end("g", "failed", 4)
        .end(ROOT, "failed", 4),
        "failed",
        "failed",
        {"g": "failed", "g1": "timeout", "g2": "skipped"},
    ),
    Case(
        "group-status-derived-when-its-end-is-missing",
        [node("g", node("g1"), node("g2", optional=True)), node("b")],
        _begin().run("g1", "passed", 3).run("g2", "failed", 4).run("b", "passed", 5).end(ROOT, "passed", 6),
        "passed",
        "passed",
        {"g": "passed", "g1": "passed", "g2": "failed", "b": "passed"},
    ),
    Case(
        "condition-always-step-after-a-failure",
        [node("a"), node("cleanup")],
        _begin().run("a", "failed", 3).run("cleanup", "passed", 4).end(ROOT, "failed", 5),
        "failed",
        "failed",
        {"a": "failed", "cleanup": "passed"},
    ),
    Case(
        "empty-workflow",
        [],
        _begin().end(ROOT, "passed", 3),
        "passed",
        "passed",
        {},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_final_status(case: Case) -> None:
    state = replay(case.signature, case.stream)
    result = state.result()
    assert state.is_finished
    assert result.status.value == case.status
    assert result.predicted_status.value == case.predicted
    assert statuses(state) == case.steps


def test_status_is_running_until_the_root_ends() -> None:
    stream = _begin().run("a", "passed", 3)
    state = replay([node("a"), node("b")], stream)
    assert state.status.value == "running"
    assert not state.is_finished
    assert state.result().finished_at is None
    assert statuses(state) == {"a": "passed", "b": "queued"}


def test_status_follows_the_lifecycle_before_steps_start() -> None:
    state = replay([node("a")], Stream().status("queued", 0).status("assigned", 1).status("starting", 2))
    assert state.status.value == "starting"
    assert state.result().to_dict()["status"] == "starting"
