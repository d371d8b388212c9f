"""Pause and resume: the execution shows paused, and paused time is not part of the duration."""

from __future__ import annotations

from tests.workflow.status.status_helpers import ROOT, T0, Stream, node, replay


def test_step_pause_markers_pause_the_execution() -> None:
    stream = (
        Stream().status("queued", 0).start(ROOT, 0).start("a", 1).add("step", 2, ref="a", status="paused")
    )
    state = replay([node("a")], stream)
    assert state.status.value == "paused"
    assert state.result().steps["a"].status.value == "paused"


def test_paused_time_is_subtracted_from_the_duration() -> None:
    stream = (
        Stream()
        .status("queued", 0)
        .start(ROOT, 0)
        .start("a", 1)
        .add("step", 2, ref="a", status="paused")
        .add("step", 12, ref="a", status="running")
        .end("a", "passed", 13)
        .end(ROOT, "passed", 14)
    )
    result = replay([node("a")], stream).result()
    assert result.status.value == "passed"
    assert result.total_duration_ms == 14_000
    assert result.paused_ms == 10_000
    assert result.duration_ms == 4_000
    assert result.to_dict()["duration"] == "4s"
    assert result.to_dict()["pauses"] == [
        {"ref": "a", "pausedAt": "2023-11-14T22:13:22.000Z", "resumedAt": "2023-11-14T22:13:32.000Z"}
    ]


def test_overlapping_pauses_count_once() -> None:
    stream = (
        Stream()
        .status("queued", 0)
        .start(ROOT, 0)
        .start("g", 0)
        .start("a", 0)
        .add("step", 2, ref="g", status="paused")
        .add("step", 4, ref="a", status="paused")
        .add("step", 6, ref="g", status="running")
        .add("step", 8, ref="a", status="running")
        .end("a", "passed", 9)
        .end("g", "passed", 9)
        .end(ROOT, "passed", 10)
    )
    result = replay([node("g", node("a"))], stream).result()
    assert result.paused_ms == 6_000
    assert result.duration_ms == 4_000


def test_execution_level_pause_and_resume() -> None:
    state = replay([node("a"), node("b")], Stream().status("queued", 0).start(ROOT, 0).start("a", 1))
    state.mark_paused(T0 + 2_000)
    assert state.status.value == "paused"
    assert state.step_status("a").value == "paused"
    state.mark_resumed(T0 + 5_000)
    assert state.status.value == "running"
    state.apply_all(Stream().events)  # nothing new
    assert [(p.paused_at - T0, p.resumed_at) for p in state.result().pauses] == [(2_000, T0 + 5_000)]


def test_paused_and_resuming_status_events_drive_the_pause() -> None:
    stream = (
        Stream().status("running", 0).start(ROOT, 0).start("a", 1).status("paused", 2).status("resuming", 4)
    )
    state = replay([node("a")], stream)
    assert state.status.value == "resuming"
    assert state.step_status("a").value == "running"


def test_pause_still_open_at_abort_ends_with_the_step() -> None:
    stream = (
        Stream().status("queued", 0).start(ROOT, 0).start("a", 1).add("step", 2, ref="a", status="paused")
    )
    state = replay([node("a")], stream)
    state.abort(T0 + 7_000)
    result = state.result()
    assert result.status.value == "aborted"
    assert result.pauses[0].resumed_at == T0 + 7_000
    assert result.paused_ms == 5_000


def test_a_resume_marker_ends_an_execution_level_pause() -> None:
    stream = (
        Stream()
        .status("running", 0)
        .start(ROOT, 0)
        .start("a", 1)
        .status("paused", 2)
        .add("step", 5, ref="a", status="running")
    )
    state = replay([node("a")], stream)
    assert state.status.value == "running"
    assert state.result().pauses[0].resumed_at == T0 + 5_000
