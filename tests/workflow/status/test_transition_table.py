"""The one transition table: finished statuses never change, phases only move forward before running."""

from __future__ import annotations

import pytest

from shoal.workflow._status import ExecutionStatus as X
from shoal.workflow._status import StepStatus as S
from shoal.workflow._status import execution_transition, step_transition

FINISHED_STEPS = [S.PASSED, S.FAILED, S.TIMEOUT, S.SKIPPED, S.ABORTED, S.CANCELED]


@pytest.mark.parametrize("current", FINISHED_STEPS)
@pytest.mark.parametrize("requested", list(S))
def test_a_finished_step_never_changes(current: S, requested: S) -> None:
    assert step_transition(current, requested) is False


@pytest.mark.parametrize(
    ("current", "requested", "allowed"),
    [
        (None, S.RUNNING, True),
        (None, S.PASSED, True),  # end without start
        (S.QUEUED, S.SKIPPED, True),
        (S.RUNNING, S.RUNNING, True),  # next retry attempt
        (S.RUNNING, S.PAUSED, True),
        (S.PAUSED, S.RUNNING, True),
        (S.PAUSED, S.ABORTED, True),
        (S.RUNNING, S.QUEUED, False),
        (S.PAUSED, S.QUEUED, False),
    ],
)
def test_step_transitions(current: S | None, requested: S, allowed: bool) -> None:
    assert step_transition(current, requested) is allowed


@pytest.mark.parametrize(
    ("current", "requested", "allowed"),
    [
        (X.QUEUED, X.ASSIGNED, True),
        (X.QUEUED, X.QUEUED, True),
        (X.ASSIGNED, X.QUEUED, True),  # the agent went away before starting it
        (X.STARTING, X.ASSIGNED, False),
        (X.SCHEDULING, X.STARTING, False),
        (X.QUEUED, X.RUNNING, True),
        (X.RUNNING, X.SCHEDULING, False),
        (X.RUNNING, X.PAUSING, True),
        (X.PAUSING, X.PAUSED, True),
        (X.PAUSED, X.RESUMING, True),
        (X.RESUMING, X.RUNNING, True),
        (X.RUNNING, X.STOPPING, True),
        (X.STOPPING, X.RUNNING, False),
        (X.STOPPING, X.ABORTED, True),
        (X.QUEUED, X.CANCELED, True),
        (X.PASSED, X.FAILED, False),
        (X.ABORTED, X.RUNNING, False),
        (X.CANCELED, X.CANCELED, False),
    ],
)
def test_execution_transitions(current: X, requested: X, allowed: bool) -> None:
    assert execution_transition(current, requested) is allowed


def test_terminal_sets() -> None:
    assert {s for s in X if s.is_finished} == {X.PASSED, X.FAILED, X.ABORTED, X.CANCELED}
    assert {s for s in S if not s.is_finished} == {S.QUEUED, S.RUNNING, S.PAUSED}
    assert {s for s in S if s.is_success} == {S.PASSED, S.SKIPPED}
