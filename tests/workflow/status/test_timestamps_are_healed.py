"""Timestamp healing (reference §5.3): leaves queue when the previous leaf finished, groups span their
children, missing starts are filled, RFC3339 with milliseconds in UTC."""

from __future__ import annotations

from shoal.workflow._status import format_duration, format_timestamp, parse_timestamp
from tests.workflow.status.status_helpers import ROOT, T0, Stream, node, replay


def test_each_leaf_is_queued_when_the_previous_one_finished() -> None:
    stream = (
        Stream()
        .status("queued", 0)
        .status("running", 1)
        .init("running", 1)
        .init("passed", 2)
        .start(ROOT, 2)
        .run("a", "passed", 3, took=2)
        .start("g", 6)
        .run("g1", "passed", 6, took=1)
        .end("g2", "skipped", 7.5)
        .end("g", "passed", 7.5)
        .end(ROOT, "passed", 8)
    )
    result = replay([node("a"), node("g", node("g1"), node("g2"))], stream).result()
    data = result.to_dict()
    assert data["queuedAt"] == "2023-11-14T22:13:20.000Z"
    assert data["startedAt"] == "2023-11-14T22:13:21.000Z"
    assert data["finishedAt"] == "2023-11-14T22:13:28.000Z"
    assert data["durationMs"] == 8000
    assert data["initialization"] == {
        "status": "passed",
        "queuedAt": "2023-11-14T22:13:21.000Z",
        "startedAt": "2023-11-14T22:13:21.000Z",
        "finishedAt": "2023-11-14T22:13:22.000Z",
    }
    steps = data["steps"]
    assert steps["a"]["queuedAt"] == "2023-11-14T22:13:22.000Z"  # initialization finished
    assert steps["a"]["startedAt"] == "2023-11-14T22:13:23.000Z"
    assert steps["a"]["finishedAt"] == "2023-11-14T22:13:25.000Z"
    assert steps["a"]["exitCode"] == 0
    assert steps["g1"]["queuedAt"] == "2023-11-14T22:13:25.000Z"  # a finished
    # A skipped step never started: its start is its queue time.
    assert steps["g2"]["queuedAt"] == steps["g2"]["startedAt"] == "2023-11-14T22:13:27.000Z"
    assert steps["g2"]["finishedAt"] == "2023-11-14T22:13:27.500Z"
    # The group spans its first child's queue time to its last child's end.
    assert steps["g"]["queuedAt"] == "2023-11-14T22:13:25.000Z"
    assert steps["g"]["startedAt"] == "2023-11-14T22:13:26.000Z"
    assert steps["g"]["finishedAt"] == "2023-11-14T22:13:27.500Z"


def test_start_before_queue_is_moved_to_the_queue_time() -> None:
    # Clocks of two containers disagree: b claims to start before a finished.
    stream = (
        Stream()
        .start(ROOT, 0)
        .run("a", "passed", 1, took=4)
        .run("b", "passed", 3, took=3)
        .end(ROOT, "passed", 6)
    )
    steps = replay([node("a"), node("b")], stream).result().steps
    assert steps["b"].queued_at == T0 + 5_000
    assert steps["b"].started_at == T0 + 5_000
    assert steps["b"].finished_at == T0 + 6_000


def test_formats() -> None:
    assert format_timestamp(T0 + 7) == "2023-11-14T22:13:20.007Z"
    assert parse_timestamp("2023-11-14T22:13:20.007123456Z") == T0 + 7
    assert parse_timestamp("2023-11-14T23:13:20.5+01:00") == T0 + 500
    assert [format_duration(ms) for ms in (0, 350, 1000, 1500, 61_000, 3_725_250)] == [
        "0s",
        "350ms",
        "1s",
        "1.5s",
        "1m1s",
        "1h2m5.25s",
    ]
