"""Memory stays bounded: long lines are cut into pieces, over-long markers are passed on as text."""

from __future__ import annotations

from shoal.execution._logparse import MarkerParser
from tests.execution.logparse.parse_helpers import lines, marker, parse


def test_a_long_line_is_cut_into_pieces_of_the_bound() -> None:
    events = parse([b"x" * 25 + b"\n"], max_line_bytes=10)
    assert [line for _, line in lines(events)] == ["x" * 10, "x" * 10, "x" * 5]


def test_cuts_do_not_split_a_utf8_character() -> None:
    text = "ab€€€€"  # € is 3 bytes
    events = parse([text.encode() + b"\n"], max_line_bytes=8)
    pieces = [line for _, line in lines(events)]
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)
    assert all(len(piece.encode()) <= 8 for piece in pieces)


def test_memory_stays_bounded_without_newlines() -> None:
    parser = MarkerParser(clock=lambda: 0, max_line_bytes=1024)
    for _ in range(200):
        parser.feed(b"y" * 1000)
        assert len(parser._carry) <= 1024 + 1
    assert sum(len(e.line or "") for e in parser.flush()) <= 1025


def test_an_over_long_marker_is_text() -> None:
    raw = marker("a", "output", big="z" * 300)
    events = parse([raw], max_line_bytes=64, max_marker_bytes=100)
    assert all(e.type == "log" for e in events)
    assert "".join(e.line or "" for e in events) == raw[:-1].decode()


def test_big_outputs_below_the_marker_bound_are_kept() -> None:
    events = parse([marker("a", "output", big="z" * 300)], max_line_bytes=64, max_marker_bytes=1000)
    assert [e.type for e in events] == ["output"]
