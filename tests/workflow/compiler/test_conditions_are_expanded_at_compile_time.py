"""`passed`/`failed`/`status`/`always`/`never` are expanded over refs; custom conditions are pushed
down to a step's operations; artifacts and services-stop default to `always` within their step."""

from __future__ import annotations

import pytest

from shoal.workflow import WorkflowError
from tests.workflow.compiler.compiler_helpers import by_name, plan_of


def _two(second: dict[str, object]) -> tuple[str, dict[str, object]]:
    return "first", {"steps": [{"name": "first", "shell": "a"}, {"name": "second", **second}]}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("passed", "{a}"),
        ("success", "{a}"),
        ("failed", "!{a}"),
        ("error", "!{a}"),
        ("always", "true"),
        ("true", "true"),
        ("never", "false"),
        ("'false'", "false"),
        ('status == "failed"', '({a}?"passed":"failed")=="failed"'),
    ],
)
def test_status_names_are_replaced_by_ref_expressions(condition: str, expected: str) -> None:
    _, spec = _two({"shell": "b", "condition": condition})
    plan = plan_of(spec)
    a = by_name(plan, "first").ref
    got = by_name(plan, "second").condition.replace(" ", "")
    assert got == expected.format(a=a).replace(" ", "")


def test_run_time_names_stay_in_conditions() -> None:
    _, spec = _two({"shell": "b", "condition": 'env.CI == "1" && passed'})
    plan = plan_of(spec)
    cond = by_name(plan, "second").condition
    assert "env.CI" in cond and by_name(plan, "first").ref in cond


def test_config_in_conditions_is_resolved() -> None:
    plan = plan_of(
        {
            "config": {"run_it": {"type": "boolean", "default": "false"}},
            "steps": [{"name": "x", "shell": "a", "condition": "config.run_it"}, {"name": "y", "shell": "b"}],
        }
    )
    assert by_name(plan, "x").condition == "false"
    plan = plan_of(
        {
            "config": {"run_it": {"type": "boolean", "default": "false"}},
            "steps": [{"name": "x", "shell": "a", "condition": "config.run_it"}],
        },
        config={"run_it": "true"},
    )
    assert by_name(plan, "x").condition == "true"


def test_custom_condition_is_pushed_down_to_each_operation() -> None:
    plan = plan_of(
        {
            "steps": [
                {"name": "first", "shell": "a"},
                {"name": "both", "condition": "env.GO == 'yes'", "shell": "b", "artifacts": {"paths": ["x"]}},
            ]
        }
    )
    group = by_name(plan, "both")
    assert group.condition == "true"
    shell, artifacts = (plan.stages[r] for r in group.children)
    assert shell.condition.replace(" ", "") == 'env.GO=="yes"'
    assert artifacts.condition.replace(" ", "") == 'env.GO=="yes"'


def test_artifacts_beside_an_operation_always_run_but_alone_follow_the_chain() -> None:
    plan = plan_of(
        {
            "steps": [
                {"name": "fails", "shell": "exit 1"},
                {"name": "with-shell", "shell": "b", "artifacts": {"paths": ["x"]}},
                {"name": "alone", "artifacts": {"paths": ["y"]}},
            ]
        }
    )
    fails, with_shell = by_name(plan, "fails").ref, by_name(plan, "with-shell")
    shell, artifacts = (plan.stages[r] for r in with_shell.children)
    assert artifacts.condition == "true"
    assert shell.condition == fails  # `passed` inside the group: the earlier siblings
    alone = by_name(plan, "alone")
    assert alone.kind == "artifacts"
    assert alone.condition == f"{with_shell.ref}&&{fails}"


def test_services_stop_always_runs_within_its_step() -> None:
    plan = plan_of({"services": {"db": {"image": "postgres"}}, "steps": [{"name": "a", "shell": "x"}]})
    stop = next(s for s in plan.stages.values() if s.kind == "services-stop")
    start = next(s for s in plan.stages.values() if s.kind == "services-start")
    assert stop.condition == "true" and stop.category == "Stop services"
    assert start.category == "Start services"
    assert stop.spec["services"] == ["db"]


def test_unknown_name_in_a_condition_is_a_positioned_problem() -> None:
    with pytest.raises(WorkflowError) as caught:
        plan_of({"steps": [{"name": "x", "shell": "a", "condition": "passed && confg.x"}]})
    problem = caught.value.problems[0]
    assert "unknown variable 'confg.x' at position 10" in problem.message
    assert problem.path == "spec.steps[0].condition"


def test_retry_until_keeps_self_and_status_names() -> None:
    plan = plan_of(
        {
            "steps": [
                {"name": "r", "shell": "a", "retry": {"count": 3, "until": "self.passed"}},
                {"name": "d", "shell": "a", "retry": {"count": 2}},
            ]
        }
    )
    retry = by_name(plan, "r").retry
    assert retry is not None and retry.count == 3 and retry.until == "self.passed"
    default = by_name(plan, "d").retry
    assert default is not None and default.until == "passed"
