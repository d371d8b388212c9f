"""Input that is not a well-formed marker is never lost: it stays in the log as text."""

from __future__ import annotations

import pytest

from shoal.execution._logparse import MarkerParser
from tests.execution.logparse.parse_helpers import lines, marker, parse


@pytest.mark.parametrize(
    "raw",
    [
        b"\x01\x05\x06a\x03start\x04{not json}\x03\n",
        b"\x01\x05\x06a-without-separator\x03\n",
        b"\x01\x05 no hint byte\x03\n",
        b'\x01\x05\x06a\x03end\x04{"ts":1}\x03\n',  # an end without a status
        b"\x01\x05\x06a\x03start\x04[1,2]\x03\n",  # a value that is not an object
    ],
)
def test_malformed_markers_become_log_lines(raw: bytes) -> None:
    events = parse([raw])
    assert [e.type for e in events] == ["log"]
    assert events[0].line == raw[:-1].decode()


def test_unknown_marker_names_are_counted_not_logged() -> None:
    parser = MarkerParser(clock=lambda: 0)
    events = list(parser.parse([marker("a", "somethingnew", name="db") + b"x\n"]))
    assert [e.line for e in events] == ["x"]
    assert parser.unknown_markers == 1


def test_toolkit_notices_become_step_outputs_keyed_by_instance() -> None:
    parser = MarkerParser(clock=lambda: 0)
    events = list(parser.parse([marker("a", "service", name="db", index=1, ip="127.0.0.2") + b"x\n"]))
    assert [(e.type, e.ref) for e in events[:1]] == [("output", "a")]
    assert events[0].outputs == {"service.db.1": {"name": "db", "index": 1, "ip": "127.0.0.2"}}
    assert parser.unknown_markers == 0


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert lines(parse([b"ok \xff\xfe bytes\n\xe2\x82\n"])) == [
        (None, "ok \ufffd\ufffd bytes"),
        (None, "\ufffd"),
    ]


def test_crlf_and_empty_lines() -> None:
    assert lines(parse([b"a\r\n\r\n\nb\rc\n"])) == [(None, "a"), (None, ""), (None, ""), (None, "b\rc")]


def test_a_last_line_without_newline_is_flushed() -> None:
    assert lines(parse([b"one\ntwo"])) == [(None, "one"), (None, "two")]


def test_a_marker_cut_off_at_the_end_of_the_stream_still_counts() -> None:
    events = parse([marker("a", "start", ts=1)[:-1]])
    assert [(e.type, e.status) for e in events] == [("step", "running")]
