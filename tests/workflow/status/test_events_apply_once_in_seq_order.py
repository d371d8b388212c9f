"""Idempotent, ordered application: duplicates are ignored, gaps wait, out-of-order input gives one result."""

from __future__ import annotations

import random

from shoal.workflow._status import ApplyOutcome, ExecutionState
from tests.workflow.status.status_helpers import ROOT, Stream, node

SIGNATURE = [node("a"), node("b")]


def _stream() -> Stream:
    return (
        Stream()
        .status("queued", 0)
        .start(ROOT, 1)
        .run("a", "passed", 1)
        .log("b", "hello", 2)
        .run("b", "failed", 3)
        .end(ROOT, "failed", 4)
    )


def _fresh() -> ExecutionState:
    return ExecutionState.for_signature(SIGNATURE, root=ROOT)


def test_a_seq_applied_twice_is_a_duplicate() -> None:
    events = _stream().events
    state = _fresh()
    assert state.apply_all(events[:3]) == [ApplyOutcome.APPLIED] * 3
    assert state.apply(events[1]) is ApplyOutcome.DUPLICATE
    assert state.last_seq == 3


def test_a_gap_holds_later_events_back_until_it_fills() -> None:
    events = _stream().events
    state = _fresh()
    state.apply_all(events[:2])
    assert state.apply(events[4]) is ApplyOutcome.BUFFERED
    assert state.apply(events[5]) is ApplyOutcome.BUFFERED
    assert state.apply(events[4]) is ApplyOutcome.DUPLICATE
    assert state.gaps == [(3, 4)]
    assert state.last_seq == 2
    state.apply_all(events[2:4])
    assert state.gaps == []
    assert state.last_seq == 6


def test_accepting_a_gap_applies_what_waits() -> None:
    events = _stream().events
    state = _fresh()
    state.apply_all([events[0], *events[5:]])
    assert state.gaps == [(2, 5)]
    state.accept_gaps()
    assert state.gaps == []
    assert state.last_seq == len(events)
    assert state.is_finished
    late = state.apply(events[2])
    assert late is ApplyOutcome.DUPLICATE


def test_any_arrival_order_with_replays_gives_the_same_result() -> None:
    events = _stream().events
    expected = _fresh()
    expected.apply_all(events)
    rng = random.Random(7)
    for _ in range(50):
        shuffled = events + rng.sample(events, k=5)
        rng.shuffle(shuffled)
        state = _fresh()
        state.apply_all(shuffled)
        assert state.result().to_dict() == expected.result().to_dict()
        assert state.log_lines == 1


def test_refused_transitions_are_reported_and_counted() -> None:
    state = _fresh()
    stream = Stream().start(ROOT, 0).run("a", "passed", 0).start("a", 5).end("a", "failed", 6)
    outcomes = state.apply_all(stream.events)
    assert outcomes[-2:] == [ApplyOutcome.IGNORED, ApplyOutcome.IGNORED]
    assert state.ignored == 2
    assert state.step_status("a").value == "passed"
