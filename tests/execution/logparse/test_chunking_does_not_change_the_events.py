"""The events depend only on the bytes of the stream, never on how it was cut into chunks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.execution.logparse.parse_helpers import marker, parse

PIECES = [
    b"plain line\n",
    b"no newline",
    b"\r\n",
    b"\n",
    b"\r",
    "ünïcödé €\n".encode(),
    b"\xff\xc3",
    b"\x01",
    b"\x05",
    b"\x01\x05",
    b"\x03",
    b"z" * 40,
    marker("a", "start", ts=1),
    marker("a", "end", ts=2, status="passed"),
    marker("b", "output", k="v" * 30),
    marker("tktw-init", "end", ts=3, status="passed"),
    marker("c", "execution", code=1, details="x", iteration=1),
]


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out: list[bytes] = []
    last = 0
    for point in points:
        out.append(data[last:point])
        last = point
    out.append(data[last:])
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES), max_size=30),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
    st.sampled_from([16, 24, 64, 1 << 16]),
)
def test_any_chunking_gives_the_same_events(pieces: list[bytes], cuts: list[int], limit: int) -> None:
    data = b"".join(pieces)
    options = {"max_line_bytes": limit, "max_marker_bytes": max(limit, 48)}
    whole = parse([data], **options)
    assert parse(_chunked(data, cuts), **options) == whole
    assert parse([bytes([b]) for b in data], **options) == whole


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=10))
def test_arbitrary_bytes_never_crash_and_chunking_does_not_matter(data: bytes, cuts: list[int]) -> None:
    whole = parse([data], max_line_bytes=16, max_marker_bytes=32)
    assert parse(_chunked(data, cuts), max_line_bytes=16, max_marker_bytes=32) == whole
    assert [e.seq for e in whole] == list(range(1, len(whole) + 1))
