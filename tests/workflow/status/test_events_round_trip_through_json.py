"""Events and results are plain JSON: what goes out comes back equal."""

from __future__ import annotations

import json

import pytest

from shoal.workflow._status import ExecutionEvent
from tests.workflow.status.status_helpers import ROOT, Stream, node, replay

EVENTS = [
    ExecutionEvent(seq=1, ts=5, type="log", ref="a", line="héllo \x1b[1mworld"),
    ExecutionEvent(seq=2, ts=6, type="step", ref="a", status="running"),
    ExecutionEvent(seq=3, ts=7, type="step", ref="a", exit_code=2, details="boom", iteration=3),
    ExecutionEvent(seq=4, ts=8, type="output", ref="a", outputs={"k": "v", "n": 1}),
    ExecutionEvent(seq=5, ts=9, type="artifact", ref="a", artifact={"name": "x/y.txt", "size": 12}),
    ExecutionEvent(
        seq=6,
        ts=9,
        type="report",
        ref="a",
        report={"kind": "junit", "file": "r.xml", "summary": {"tests": 3}},
    ),
    ExecutionEvent(seq=7, ts=9, type="status", status="aborted", details="by bob"),
    ExecutionEvent(seq=8, ts=9, type="initialization", status="failed", details="no template"),
]


@pytest.mark.parametrize("event", EVENTS, ids=[e.type for e in EVENTS])
def test_event_round_trip(event: ExecutionEvent) -> None:
    text = json.dumps(event.to_dict())
    assert ExecutionEvent.from_dict(json.loads(text)) == event


def test_fast_log_constructor_equals_the_regular_one() -> None:
    fast = ExecutionEvent.log(3, 10, "r", "line")
    assert fast == ExecutionEvent(seq=3, ts=10, type="log", ref="r", line="line")
    assert fast.to_dict() == {"seq": 3, "ts": 10, "type": "log", "ref": "r", "line": "line"}


@pytest.mark.parametrize(
    "data",
    [
        {"seq": 1, "ts": 1, "type": "nope"},
        {"seq": 0, "ts": 1, "type": "log"},
        {"seq": 1, "ts": 1, "type": "log", "colour": "red"},
    ],
)
def test_bad_events_are_refused(data: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        ExecutionEvent.from_dict(data)


def test_result_is_json() -> None:
    stream = Stream().status("queued", 0).start(ROOT, 0).run("a", "failed", 1, code=3).end(ROOT, "failed", 2)
    data = replay([node("a")], stream).result().to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["steps"]["a"] == {
        "status": "failed",
        "exitCode": 3,
        "queuedAt": "2023-11-14T22:13:20.000Z",
        "startedAt": "2023-11-14T22:13:21.000Z",
        "finishedAt": "2023-11-14T22:13:22.000Z",
    }


def test_events_with_dict_payloads_are_hashable() -> None:
    event = ExecutionEvent(seq=4, ts=8, type="output", ref="a", outputs={"k": "v"})
    assert {event, ExecutionEvent.from_dict(event.to_dict())} == {event}
