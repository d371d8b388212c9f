"""Property tests: any event sequence applies without crashing, finished statuses never change, and the
result never depends on the order or repetition in which the same events arrive."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.workflow._status import ExecutionEvent, ExecutionState, ExecutionStatus, StepStatus
from tests.workflow.status.status_helpers import ROOT, T0, node

SIGNATURE = [
    node("a"),
    node("g", node("g1"), node("g2", optional=True)),
    node("n", node("n1"), negative=True),
]
REFS = [ROOT, "a", "g", "g1", "g2", "n", "n1", "unknown", "tktw-init"]
STEP_STATUSES = [s.value for s in StepStatus] + [None, "bogus"]
EXEC_STATUSES = [s.value for s in ExecutionStatus] + ["bogus"]
TEXTS = [None, "", "boom", "é\n"]


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["step", "step", "step", "status", "initialization", "log", "output"]))
    ts = T0 + draw(st.integers(min_value=0, max_value=100_000))
    data: dict[str, Any] = {"ts": ts, "type": kind}
    if kind in ("step", "initialization"):
        data["ref"] = draw(st.sampled_from(REFS))
        data["status"] = draw(st.sampled_from(STEP_STATUSES))
        data["exit_code"] = draw(st.none() | st.integers(min_value=-1, max_value=255))
        data["details"] = draw(st.sampled_from(TEXTS))
        data["iteration"] = draw(st.none() | st.integers(min_value=1, max_value=4))
    elif kind == "status":
        data["status"] = draw(st.sampled_from(EXEC_STATUSES))
        data["details"] = draw(st.sampled_from(TEXTS))
    elif kind == "log":
        data["ref"] = draw(st.sampled_from(REFS))
        data["line"] = draw(st.sampled_from(TEXTS[1:]))
    else:
        data["ref"] = draw(st.sampled_from(REFS))
        data["outputs"] = {"k": draw(st.sampled_from(TEXTS[1:]))}
    return data


def _events(items: list[dict[str, Any]]) -> list[ExecutionEvent]:
    return [ExecutionEvent(seq=i, **item) for i, item in enumerate(items, 1)]


def _fresh() -> ExecutionState:
    return ExecutionState.for_signature(SIGNATURE, root=ROOT)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(payloads(), max_size=40))
def test_finished_statuses_never_change(items: list[dict[str, Any]]) -> None:
    state = _fresh()
    finished: dict[str, StepStatus] = {}
    final: ExecutionStatus | None = None
    for event in _events(items):
        state.apply(event)
        for ref in REFS:
            reported = state.reported_status(ref)
            if ref in finished:
                assert reported is finished[ref]
            elif reported is not None and reported.is_finished:
                finished[ref] = reported
        if final is not None:
            assert state.status is final
        elif state.is_finished:
            final = state.status
            assert final.is_finished
            assert state.result().to_dict()["status"] == final.value
    assert state.result().to_dict()["steps"].keys() == {"a", "g", "g1", "g2", "n", "n1"}
    if state.is_finished:
        result = state.result()
        assert all(step.status.is_finished for step in result.steps.values())
        assert result.finished_at is not None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(payloads(), max_size=30), st.randoms(use_true_random=False))
def test_arrival_order_and_replays_do_not_matter(items: list[dict[str, Any]], rng: Any) -> None:
    events = _events(items)
    expected = _fresh()
    expected.apply_all(events)
    arrived = events + [e for e in events if rng.random() < 0.3]
    rng.shuffle(arrived)
    state = _fresh()
    state.apply_all(arrived)
    assert state.last_seq == len(events)
    assert state.result().to_dict() == expected.result().to_dict()
