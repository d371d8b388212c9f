"""Every marker name of the init protocol maps to one event; text between markers becomes log lines."""

from __future__ import annotations

from shoal.workflow._status import ExecutionEvent
from tests.execution.logparse.parse_helpers import CLOCK_MS, lines, marker, parse


def test_a_whole_stream_maps_to_events_in_order() -> None:
    stream = b"".join(
        [
            marker("root", "start", ts=1),
            marker("a", "start", ts=2),
            b"hello\n",
            b"world\n",
            marker("a", "output", k="v"),
            marker("a", "execution", code=3, details="", iteration=1),
            marker("a", "iteration", n=2),
            marker("a", "execution", code=0, details="", iteration=2),
            marker("a", "end", ts=5, status="passed"),
            marker("p", "start", ts=6),
            marker("p", "pause", ts=7),
            marker("p", "resume", ts=9),
            marker("p", "artifact", name="x.txt", size=3),
            marker("p", "report", kind="junit", file="r.xml", summary={"tests": 1}),
            marker("p", "end", ts=10, status="timeout"),
            marker("root", "end", ts=11, status="failed"),
        ]
    )
    events = parse([stream])
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.to_dict() for e in events] == [
        {"seq": 1, "ts": 1, "type": "step", "ref": "root", "status": "running"},
        {"seq": 2, "ts": 2, "type": "step", "ref": "a", "status": "running"},
        {"seq": 3, "ts": CLOCK_MS, "type": "log", "ref": "a", "line": "hello"},
        {"seq": 4, "ts": CLOCK_MS, "type": "log", "ref": "a", "line": "world"},
        {"seq": 5, "ts": CLOCK_MS, "type": "output", "ref": "a", "outputs": {"k": "v"}},
        {"seq": 6, "ts": CLOCK_MS, "type": "step", "ref": "a", "exit_code": 3, "details": "", "iteration": 1},
        {"seq": 7, "ts": CLOCK_MS, "type": "step", "ref": "a", "iteration": 2},
        {"seq": 8, "ts": CLOCK_MS, "type": "step", "ref": "a", "exit_code": 0, "details": "", "iteration": 2},
        {"seq": 9, "ts": 5, "type": "step", "ref": "a", "status": "passed"},
        {"seq": 10, "ts": 6, "type": "step", "ref": "p", "status": "running"},
        {"seq": 11, "ts": 7, "type": "step", "ref": "p", "status": "paused"},
        {"seq": 12, "ts": 9, "type": "step", "ref": "p", "status": "running"},
        {"seq": 13, "ts": CLOCK_MS, "type": "artifact", "ref": "p", "artifact": {"name": "x.txt", "size": 3}},
        {
            "seq": 14,
            "ts": CLOCK_MS,
            "type": "report",
            "ref": "p",
            "report": {"kind": "junit", "file": "r.xml", "summary": {"tests": 1}},
        },
        {"seq": 15, "ts": 10, "type": "step", "ref": "p", "status": "timeout"},
        {"seq": 16, "ts": 11, "type": "step", "ref": "root", "status": "failed"},
    ]


def test_a_marker_right_after_output_without_newline_ends_that_line() -> None:
    events = parse(
        [marker("a", "start", ts=1) + b"no newline here" + marker("a", "end", ts=2, status="passed")]
    )
    assert lines(events) == [("a", "no newline here")]
    assert [e.status for e in events if e.type == "step"] == ["running", "passed"]


def test_logs_belong_to_the_innermost_running_stage() -> None:
    stream = (
        b"before\n"
        + marker("root", "start", ts=1)
        + b"in root\n"
        + marker("g", "start", ts=1)
        + marker("a", "start", ts=1)
        + b"in a\n"
        + marker("a", "end", ts=2, status="passed")
        + b"back in g\n"
        + marker("b", "end", ts=2, status="skipped")  # skipped: end without start
        + b"still g\n"
        + marker("g", "end", ts=2, status="passed")
        + b"root again\n"
    )
    assert lines(parse([stream])) == [
        (None, "before"),
        ("root", "in root"),
        ("a", "in a"),
        ("g", "back in g"),
        ("g", "still g"),
        ("root", "root again"),
    ]


def test_the_initialization_ref_gives_initialization_events() -> None:
    events = parse([marker("tktw-init", "start", ts=1), marker("tktw-init", "end", ts=2, status="passed")])
    assert [(e.type, e.status) for e in events] == [
        ("initialization", "running"),
        ("initialization", "passed"),
    ]


def test_markers_with_crlf_are_still_markers() -> None:
    events = parse([marker("a", "start", ts=1).replace(b"\n", b"\r\n") + b"x\r\n"])
    assert [(e.type, e.status, e.line) for e in events] == [("step", "running", None), ("log", None, "x")]


def test_parsed_events_equal_validated_ones() -> None:
    stream = marker("a", "start", ts=1) + b"x\n" + marker("a", "execution", code=1, details="d", iteration=1)
    stream += marker("a", "output", k="v") + marker("a", "end", ts=2, status="failed")
    for event in parse([stream]):
        assert ExecutionEvent.from_dict(event.to_dict()) == event
