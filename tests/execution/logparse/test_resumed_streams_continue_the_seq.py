"""A parser started for a resumed stream continues the seq numbers and the running step."""

from __future__ import annotations

from shoal.execution._logparse import MarkerParser
from tests.execution.logparse.parse_helpers import marker


def test_resumed_parser_continues() -> None:
    first = MarkerParser(clock=lambda: 0)
    events = first.feed(marker("root", "start", ts=1) + marker("a", "start", ts=1) + b"one\n")
    assert first.current_ref == "a"
    second = MarkerParser(first.next_seq, ref=first.current_ref, clock=lambda: 0)
    more = second.feed(b"two\n" + marker("a", "end", ts=2, status="passed"))
    assert [e.seq for e in events + more] == [1, 2, 3, 4, 5]
    assert more[0].ref == "a" and more[0].line == "two"
    assert second.current_ref is None  # the root it never saw start is not known to it


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
