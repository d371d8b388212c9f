"""Init program output → MarkerParser → ExecutionState: the whole data path below the agent."""

from __future__ import annotations

from shoal.execution._logparse import MarkerParser
from shoal.workflow._plan import SignatureNode
from shoal.workflow._status import ExecutionEvent, ExecutionState
from tests.execution.logparse.parse_helpers import marker

SIGNATURE = [
    SignatureNode(ref="r1", name="Build"),
    SignatureNode(
        ref="r2",
        name="Tests",
        children=[SignatureNode(ref="r3", name="Unit"), SignatureNode(ref="r4", name="Flaky", optional=True)],
    ),
    SignatureNode(ref="r5", name="Never", negative=True),
]

OUTPUT = b"".join(
    [
        marker("root", "start", ts=1000),
        marker("r1", "start", ts=1001),
        b"compiling...\r\n",
        b"done",  # no newline before the marker
        marker("r1", "execution", code=0, details="", iteration=1),
        marker("r1", "end", ts=2000, status="passed"),
        marker("r2", "start", ts=2001),
        marker("r3", "start", ts=2002),
        b"ok 1\nok 2\n",
        marker("r3", "execution", code=0, details="", iteration=1),
        marker("r3", "end", ts=3000, status="passed"),
        marker("r4", "start", ts=3001),
        b"\xff broken bytes\n",
        marker("r4", "execution", code=1, details="", iteration=1),
        marker("r4", "iteration", n=2),
        marker("r4", "execution", code=2, details="", iteration=2),
        marker("r4", "end", ts=4000, status="failed"),
        marker("r2", "end", ts=4001, status="passed"),
        marker("r5", "start", ts=4002),
        marker("r5", "execution", code=1, details="", iteration=1),
        marker("r5", "end", ts=5000, status="passed"),
        marker("root", "end", ts=5001, status="passed"),
    ]
)


def _events(chunk_size: int) -> list[ExecutionEvent]:
    parser = MarkerParser(3, clock=lambda: 1500)  # seq 1 and 2 are the runtime's own status events
    chunks = [OUTPUT[i : i + chunk_size] for i in range(0, len(OUTPUT), chunk_size)]
    return [
        ExecutionEvent(seq=1, ts=0, type="status", status="queued"),
        ExecutionEvent(seq=2, ts=500, type="status", status="running"),
        *parser.parse(chunks),
    ]


def test_parsed_output_gives_the_execution_result() -> None:
    state = ExecutionState.for_signature(SIGNATURE, root="root")
    state.apply_all(_events(7))
    result = state.result().to_dict()
    assert state.gaps == []
    assert result["status"] == "passed"
    assert result["predictedStatus"] == "passed"
    assert {ref: s["status"] for ref, s in result["steps"].items()} == {
        "r1": "passed",
        "r2": "passed",
        "r3": "passed",
        "r4": "failed",
        "r5": "passed",
    }
    assert result["steps"]["r4"]["exitCode"] == 2
    assert result["steps"]["r5"]["exitCode"] == 1
    assert result["durationMs"] == 5001
    assert state.log_lines == 5


def test_log_lines_and_refs() -> None:
    logs = [(e.ref, e.line) for e in _events(4096) if e.type == "log"]
    assert logs == [
        ("r1", "compiling..."),
        ("r1", "done"),
        ("r3", "ok 1"),
        ("r3", "ok 2"),
        ("r4", "\ufffd broken bytes"),
    ]


def test_chunk_size_does_not_matter() -> None:
    assert _events(1) == _events(13) == _events(1 << 16)
