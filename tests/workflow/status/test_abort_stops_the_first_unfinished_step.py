"""Abort, cancel and a vanished runner: the first unfinished step takes the blame, later ones are skipped."""

from __future__ import annotations

from shoal.workflow._status import ExecutionState
from tests.workflow.status.status_helpers import ROOT, T0, Stream, node, replay, statuses

SIGNATURE = [node("a"), node("g", node("g1"), node("g2")), node("c")]


def _running_g1() -> Stream:
    return (
        Stream()
        .status("queued", 0)
        .status("running", 1)
        .start(ROOT, 2)
        .run("a", "passed", 2)
        .start("g", 3)
        .start("g1", 3)
    )


def test_abort_event_aborts_the_running_step_and_skips_the_rest() -> None:
    state = replay(SIGNATURE, _running_g1().status("aborted", 10, details="requested by alice"))
    result = state.result()
    assert result.status.value == "aborted"
    assert result.predicted_status.value == "aborted"
    assert statuses(state) == {
        "a": "passed",
        "g": "aborted",
        "g1": "aborted",
        "g2": "skipped",
        "c": "skipped",
    }
    assert result.steps["g1"].error_message == "The execution has been aborted. (requested by alice)"
    assert result.steps["g2"].error_message == "The execution was aborted before. (requested by alice)"
    assert result.steps["a"].error_message == ""
    assert result.finished_at == T0 + 10_000


def test_abort_without_reason_uses_the_plain_messages() -> None:
    state = replay(SIGNATURE, _running_g1())
    state.abort(T0 + 10_000)
    result = state.result()
    assert result.steps["g1"].error_message == "The execution has been aborted."
    assert result.steps["c"].error_message == "The execution was aborted before."


def test_cancel_marks_the_running_step_canceled() -> None:
    state = replay(SIGNATURE, _running_g1().status("canceled", 10))
    result = state.result()
    assert result.status.value == "canceled"
    assert result.predicted_status.value == "canceled"
    assert statuses(state) == {
        "a": "passed",
        "g": "canceled",
        "g1": "canceled",
        "g2": "skipped",
        "c": "skipped",
    }
    assert result.steps["g1"].error_message == "The execution has been canceled."
    assert result.steps["c"].error_message == "The execution was canceled before."


def test_abort_before_any_step_started_blames_the_initialization() -> None:
    state = replay(SIGNATURE, Stream().status("queued", 0).init("running", 1).status("aborted", 2))
    result = state.result()
    assert result.status.value == "aborted"
    assert result.initialization.status.value == "aborted"
    assert result.initialization.error_message == "The execution has been aborted."
    assert set(statuses(state).values()) == {"skipped"}


def test_abort_markers_from_the_init_program_end_the_execution_aborted() -> None:
    stream = (
        _running_g1()
        .add("step", 5, ref="g1", exit_code=143, details="The execution has been aborted.", iteration=1)
        .end("g1", "aborted", 5)
        .end("g2", "skipped", 5)
        .end("g", "aborted", 5)
        .end("c", "skipped", 5)
        .end(ROOT, "aborted", 5)
    )
    state = replay(SIGNATURE, stream)
    result = state.result()
    assert result.status.value == "aborted"
    assert result.steps["g1"].exit_code == 143
    assert result.steps["g1"].error_message == "The execution has been aborted."
    assert statuses(state) == {
        "a": "passed",
        "g": "aborted",
        "g1": "aborted",
        "g2": "skipped",
        "c": "skipped",
    }


def test_vanished_runner_finalises_everything_unfinished() -> None:
    state = replay(SIGNATURE, _running_g1())
    state.finalize_vanished(T0 + 60_000)
    result = state.result()
    assert result.status.value == "aborted"
    assert statuses(state) == {
        "a": "passed",
        "g": "aborted",
        "g1": "aborted",
        "g2": "skipped",
        "c": "skipped",
    }
    assert (
        result.steps["g1"].error_message == "The execution has been aborted. (the runner stopped reporting)"
    )


def test_runtime_end_with_unreported_steps_aborts_them() -> None:
    state = replay(SIGNATURE, _running_g1().status("passed", 9))
    assert state.result().status.value == "aborted"
    assert statuses(state)["g1"] == "aborted"


def test_abort_after_the_end_changes_nothing() -> None:
    stream = Stream().start(ROOT, 0).run("a", "passed", 1).end(ROOT, "passed", 2)
    state = replay([node("a")], stream)
    state.abort(T0 + 5_000)
    assert state.result().status.value == "passed"
    assert state.result().finished_at == T0 + 2_000


def test_abort_with_a_group_of_passed_and_skipped_children_is_aborted() -> None:
    state = ExecutionState.for_signature([node("g", node("g1"), node("g2"))], root=ROOT)
    state.apply_all(Stream().start(ROOT, 0).start("g", 0).run("g1", "passed", 0).events)
    state.abort(T0 + 3_000)
    assert statuses(state) == {"g": "aborted", "g1": "passed", "g2": "aborted"}
