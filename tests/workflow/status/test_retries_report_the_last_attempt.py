"""Retries: every attempt reports its exit code; the step keeps the last attempt's and ends once."""

from __future__ import annotations

from tests.workflow.status.status_helpers import ROOT, Stream, node, replay


def test_a_retry_that_passes_clears_the_earlier_error() -> None:
    stream = (
        Stream()
        .start(ROOT, 0)
        .start("a", 0)
        .add("step", 1, ref="a", exit_code=137, details="killed by signal KILL", iteration=1)
        .add("step", 1, ref="a", iteration=2)
        .add("step", 2, ref="a", exit_code=1, details="", iteration=2)
        .add("step", 2, ref="a", iteration=3)
        .add("step", 3, ref="a", exit_code=0, details="", iteration=3)
        .end("a", "passed", 3)
        .end(ROOT, "passed", 3)
    )
    result = replay([node("a")], stream).result()
    assert result.status.value == "passed"
    assert result.steps["a"].exit_code == 0
    assert result.steps["a"].error_message == ""


def test_retries_exhausted_fail_with_the_last_attempt() -> None:
    stream = Stream().start(ROOT, 0).start("a", 0)
    for attempt in (1, 2):
        if attempt > 1:
            stream.add("step", attempt, ref="a", iteration=attempt)
        stream.add("step", attempt, ref="a", exit_code=attempt, details="", iteration=attempt)
    stream.end("a", "failed", 3).end(ROOT, "failed", 3)
    result = replay([node("a")], stream).result()
    assert result.status.value == "failed"
    assert result.steps["a"].exit_code == 2


def test_timeout_details_survive_the_end() -> None:
    stream = (
        Stream()
        .start(ROOT, 0)
        .start("a", 0)
        .add("step", 3, ref="a", exit_code=143, details="timed out after 3s", iteration=1)
        .end("a", "timeout", 3)
        .end(ROOT, "failed", 3)
    )
    result = replay([node("a")], stream).result()
    assert result.steps["a"].status.value == "timeout"
    assert result.steps["a"].error_message == "timed out after 3s"
    assert result.steps["a"].exit_code == 143
