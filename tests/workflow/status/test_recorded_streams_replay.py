"""Recorded event streams (tests/fixtures/streams/*.jsonl, expectations beside them in *.json) replayed
through ExecutionState, in order and shuffled with replays."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from shoal.workflow._plan import SignatureNode
from shoal.workflow._status import ApplyOutcome, ExecutionEvent, ExecutionState

STREAMS = Path(__file__).resolve().parents[2] / "fixtures" / "streams"
NAMES = sorted(p.stem for p in STREAMS.glob("*.jsonl"))


def load(name: str) -> tuple[dict[str, Any], list[ExecutionEvent]]:
    meta = json.loads((STREAMS / f"{name}.json").read_text())
    lines = (STREAMS / f"{name}.jsonl").read_text().splitlines()
    return meta, [ExecutionEvent.from_dict(json.loads(line)) for line in lines if line.strip()]


def fresh(meta: dict[str, Any]) -> ExecutionState:
    signature = [SignatureNode.from_dict(n) for n in meta["signature"]]
    return ExecutionState.for_signature(signature, root=meta["root"])


def test_there_are_recorded_streams() -> None:
    assert len(NAMES) >= 5


@pytest.mark.parametrize("name", NAMES)
def test_replay_gives_the_recorded_outcome(name: str) -> None:
    meta, events = load(name)
    expected = meta["expected"]
    state = fresh(meta)
    outcomes = state.apply_all(events)
    result = state.result()
    data = result.to_dict()
    assert state.is_finished
    assert state.gaps == []
    assert data["status"] == expected["status"]
    assert data["predictedStatus"] == expected["predictedStatus"]
    assert data["initialization"]["status"] == expected["initialization"]
    assert {ref: step["status"] for ref, step in data["steps"].items()} == expected["steps"]
    codes = {ref: step["exitCode"] for ref, step in data["steps"].items() if "exitCode" in step}
    assert codes == expected.get("exitCodes", {})
    errors = {ref: step["errorMessage"] for ref, step in data["steps"].items() if "errorMessage" in step}
    if "errorMessage" in data["initialization"]:
        errors["initialization"] = data["initialization"]["errorMessage"]
    assert errors == expected.get("errors", {})
    assert data["durationMs"] == expected["durationMs"]
    assert data["pausedMs"] == expected.get("pausedMs", 0)
    assert outcomes.count(ApplyOutcome.DUPLICATE) == expected.get("duplicates", 0)
    assert state.log_lines == expected["logLines"]
    assert state.outputs == expected.get("outputs", {})
    assert [{"name": a.name, "size": a.size} for a in state.artifacts] == expected.get("artifacts", [])
    # Every finished step has its whole time span, in order.
    for step in result.steps.values():
        assert step.queued_at is not None and step.started_at is not None and step.finished_at is not None
        assert step.queued_at <= step.started_at <= step.finished_at


@pytest.mark.parametrize("name", NAMES)
def test_shuffled_replays_give_the_same_result(name: str) -> None:
    meta, events = load(name)
    reference = fresh(meta)
    reference.apply_all(events)
    rng = random.Random(name)
    for _ in range(10):
        arrived = events + rng.sample(events, k=min(4, len(events)))
        rng.shuffle(arrived)
        state = fresh(meta)
        state.apply_all(arrived)
        assert state.result().to_dict() == reference.result().to_dict()
