"""Plans from the real compiler (expanded status chains, generated refs) and chains across containers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shoal.workflow import compile_workflow
from shoal.workflow._plan import Plan

from ._plans import Workspace, build, group, shell

MakeWorkspace = Callable[[Plan], Workspace]


def compiled(spec: dict[str, Any]) -> Plan:
    doc = {
        "apiVersion": "testworkflows.testkube.io/v1",
        "kind": "TestWorkflow",
        "metadata": {"name": "compiled"},
        "spec": spec,
    }
    return compile_workflow(doc).plan


def by_name(plan: Plan, statuses: dict[str, str]) -> dict[str, str]:
    return {plan.stages[ref].name or ref: status for ref, status in statuses.items()}


def test_compiled_workflow_statuses(workspace: MakeWorkspace) -> None:
    plan = compiled(
        {
            "steps": [
                {"name": "one", "shell": "echo one"},
                {"name": "opt", "shell": "exit 1", "optional": True},
                {
                    "name": "grp",
                    "steps": [
                        {"name": "inner", "shell": "exit 2"},
                        {"name": "inner-after", "shell": "echo no"},
                        {"name": "inner-always", "condition": "always", "shell": "echo yes"},
                    ],
                },
                {"name": "after", "shell": "echo no"},
                {"name": "on-failure", "condition": "failed", "shell": "echo handled"},
                {"name": "neg", "negative": True, "condition": "always", "shell": "exit 3"},
            ]
        }
    )
    result = workspace(plan).run_all()
    assert by_name(plan, result.statuses()) == {
        "one": "passed",
        "opt": "failed",
        "inner": "failed",
        "inner-after": "skipped",
        "inner-always": "passed",
        "grp": "failed",
        "after": "skipped",
        "on-failure": "passed",
        "neg": "passed",
        plan.root: "failed",
    }
    assert "handled" in result.text and "yes" in result.text


def test_failure_in_an_earlier_container_skips_later_steps(workspace: MakeWorkspace) -> None:
    plan = build(
        group(
            "root",
            group("g", shell("a", "exit 1"), shell("b", "echo b-ran")),
            shell("c", "echo c-ran"),
            shell("d", "echo d-ran", condition="always"),
        ),
        cuts=["b", "c", "d"],
    )
    assert len(plan.containers) == 4
    result = workspace(plan).run_all()
    assert result.statuses() == {
        "a": "failed",
        "b": "skipped",
        "g": "failed",
        "c": "skipped",
        "d": "passed",
        "root": "failed",
    }
    assert "b-ran" not in result.text and "c-ran" not in result.text and "d-ran" in result.text
