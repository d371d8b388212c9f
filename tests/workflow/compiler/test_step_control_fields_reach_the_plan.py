"""Refs, ids, timeouts, retries, pauses and the rest of a step's control fields."""

from __future__ import annotations

import re

import pytest

from shoal.workflow import WorkflowError, derive_step_id, parse_duration_ms
from tests.workflow.compiler.compiler_helpers import by_name, plan_of

SPEC = {"steps": [{"name": "a", "shell": "x"}, {"name": "b", "steps": [{"name": "c", "shell": "y"}]}]}


def test_refs_are_deterministic_and_distinct() -> None:
    first, second = plan_of(SPEC), plan_of(SPEC)
    assert list(first.stages) == list(second.stages)
    assert first.root == "root"
    for ref in first.stages:
        assert ref == "root" or re.fullmatch(r"r[0-9a-z]{6}", ref)


def test_refs_depend_on_the_workflow_name() -> None:
    from shoal.workflow import compile_workflow
    from tests.workflow.compiler.compiler_helpers import CONTEXT, workflow

    a = compile_workflow(workflow(SPEC, name="one"), {}, {}, CONTEXT).plan
    b = compile_workflow(workflow(SPEC, name="two"), {}, {}, CONTEXT).plan
    assert set(a.stages) & set(b.stages) == {"root"}


@pytest.mark.parametrize(
    ("text", "ms"),
    [("30s", 30_000), ("5m", 300_000), ("1h30m", 5_400_000), ("1.5s", 1500), ("250ms", 250), ("0", 0)],
)
def test_go_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


def test_timeout_retry_paused_reach_the_stage() -> None:
    plan = plan_of(
        {
            "steps": [
                {
                    "name": "t",
                    "timeout": "1m30s",
                    "retry": {"count": 2, "until": "self.passed"},
                    "paused": True,
                    "shell": "x",
                }
            ]
        }
    )
    stage = by_name(plan, "t")
    assert stage.timeout_ms == 90_000 and stage.paused
    assert stage.retry is not None and stage.retry.count == 2


def test_timeout_from_config_is_resolved() -> None:
    plan = plan_of(
        {
            "config": {"t": {"type": "string", "default": "45s"}},
            "steps": [{"name": "t", "timeout": "{{ config.t }}", "shell": "x"}],
        }
    )
    assert by_name(plan, "t").timeout_ms == 45_000


def test_paused_step_without_operations_gets_a_wait_stage() -> None:
    plan = plan_of({"steps": [{"name": "wait", "paused": True}, {"name": "after", "shell": "x"}]})
    wait = by_name(plan, "wait")
    assert wait.kind == "pause" and wait.category == "Wait for continue" and wait.paused


def test_step_ids_are_explicit_or_derived_and_unique() -> None:
    plan = plan_of(
        {
            "steps": [
                {"name": "Run tests!", "shell": "a"},
                {"name": "Run tests", "shell": "b"},
                {"id": "mine", "name": "x", "shell": "c"},
            ]
        }
    )
    assert [n.id for n in plan.signature] == ["run_tests", "run_tests_1", "mine"]
    assert derive_step_id("  Ünïcode ") == ""
    assert derive_step_id("K6 / Smoke") == "k6_smoke"
    with pytest.raises(WorkflowError, match="duplicate step id 'x'"):
        plan_of({"steps": [{"id": "x", "shell": "a"}, {"id": "x", "shell": "b"}]})


def test_workflow_with_nothing_to_run_is_rejected() -> None:
    with pytest.raises(WorkflowError, match="nothing to run"):
        plan_of({"steps": [{"name": "empty"}]})


def test_optional_negative_single_step() -> None:
    plan = plan_of({"steps": [{"name": "n", "negative": True, "optional": True, "shell": "exit 1"}]})
    stage = by_name(plan, "n")
    assert stage.negative and stage.optional
    assert plan.stages[plan.root].result == "true"


def test_events_target_concurrency_and_silent_are_kept() -> None:
    plan = plan_of(
        {
            "events": [{"cronjob": {"cron": "*/5 * * * *", "timezone": "Europe/Paris"}}],
            "execution": {"target": {"match": {"name": ["runner-1"]}}, "silent": True},
            "concurrency": {"group": "g", "max": 1},
            "steps": [{"shell": "x"}],
        }
    )
    assert plan.events == [{"cronjob": {"cron": "*/5 * * * *", "timezone": "Europe/Paris"}}]
    assert plan.target == {"match": {"name": ["runner-1"]}}
    assert plan.concurrency == {"group": "g", "max": 1}
    assert plan.silent


def test_execute_and_parallel_keep_their_spec() -> None:
    plan = plan_of(
        {
            "steps": [
                {
                    "name": "e",
                    "execute": {
                        "parallelism": 2,
                        "workflows": [{"name": "child", "config": {"i": "{{ index }}"}, "count": 2}],
                    },
                },
                {"name": "p", "parallel": {"count": 2, "shell": "w"}},
            ]
        }
    )
    execute = by_name(plan, "e")
    assert execute.category == "Execute test workflows"
    assert execute.spec["workflows"][0]["config"] == {"i": "{{index}}"}
    assert by_name(plan, "p").category == "Run in parallel"
