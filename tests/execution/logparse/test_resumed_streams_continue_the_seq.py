"""A parser started for a resumed stream continues the seq numbers and the running step."""

from __future__ import annotations

from shoal.execution._logparse import MarkerParser
from shoal.workflow._plan import SignatureNode
from shoal.workflow._status import ExecutionState
from tests.execution.logparse.parse_helpers import marker


def test_resumed_parser_continues() -> None:
    first = MarkerParser(clock=lambda: 0)
    events = first.feed(marker("root", "start", ts=1) + marker("a", "start", ts=1) + b"one\n")
    assert first.current_ref == "a"
    state = ExecutionState.for_signature([SignatureNode(ref="a", name="A")], root="root")
    state.apply_all(events)
    assert state.running_refs() == ["root", "a"]
    second = MarkerParser(state.next_seq, running=state.running_refs(), clock=lambda: 0)
    more = second.feed(b"two\n" + marker("a", "end", ts=2, status="passed") + b"three\n")
    assert [e.seq for e in events + more] == [1, 2, 3, 4, 5, 6]
    assert [(e.ref, e.line) for e in more if e.type == "log"] == [("a", "two"), ("root", "three")]
    assert second.current_ref == "root"


def test_runtime_events_share_the_seq_order() -> None:
    parser = MarkerParser(clock=lambda: 42)
    queued = parser.make_event("status", status="running")
    events = parser.feed(b"line\n")
    done = parser.make_event("status", ts=7, status="passed")
    assert [(e.seq, e.type, e.ts) for e in [queued, *events, done]] == [
        (1, "status", 42),
        (2, "log", 42),
        (3, "status", 7),
    ]
