"""A fatal error before or while starting fails the execution and explains itself in `initialization`."""

from __future__ import annotations

from shoal.workflow._status import ExecutionState
from tests.workflow.status.status_helpers import ROOT, T0, Stream, node, replay, statuses

SIGNATURE = [node("a"), node("g", node("g1")), node("b")]


def test_initialization_event_failure_skips_every_step() -> None:
    stream = (
        Stream().status("queued", 0).init("running", 1).init("failed", 2, details="template 'x' not found")
    )
    state = replay(SIGNATURE, stream)
    result = state.result()
    assert result.status.value == "failed"
    assert result.predicted_status.value == "failed"
    assert result.initialization.status.value == "failed"
    assert result.initialization.error_message == "template 'x' not found"
    assert statuses(state) == {"a": "skipped", "g": "skipped", "g1": "skipped", "b": "skipped"}
    assert result.finished_at == T0 + 2_000


def test_pod_error_mid_run_fails_running_steps() -> None:
    state = replay(SIGNATURE, Stream().start(ROOT, 0).run("a", "passed", 0).start("g", 1).start("g1", 1))
    state.fail_initialization(T0 + 5_000, "image pull failed: busybox:nope")
    result = state.result()
    assert result.status.value == "failed"
    assert result.initialization.error_message == "image pull failed: busybox:nope"
    assert statuses(state) == {"a": "passed", "g": "failed", "g1": "failed", "b": "skipped"}


def test_fatal_error_with_abort_flag_ends_aborted() -> None:
    state = ExecutionState.for_signature(SIGNATURE, root=ROOT)
    state.fail_initialization(T0, "", aborted=True)
    result = state.result()
    assert result.status.value == "aborted"
    assert result.initialization.error_message == "fatal error without details"


def test_runtime_failure_status_before_initialization_is_a_fatal_error() -> None:
    state = replay(SIGNATURE, Stream().status("queued", 0).status("failed", 1, details="bad config: x"))
    result = state.result()
    assert result.status.value == "failed"
    assert result.initialization.error_message == "bad config: x"
    assert set(statuses(state).values()) == {"skipped"}


def test_initialization_passes_implicitly_when_steps_start() -> None:
    state = replay(SIGNATURE, Stream().status("running", 0).start(ROOT, 1).start("a", 2))
    assert state.initialization_status.value == "passed"
    assert state.result().initialization.finished_at == T0 + 1_000
