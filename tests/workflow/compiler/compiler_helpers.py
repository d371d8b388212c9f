"""Helpers of the compiler tests: compile YAML text, look stages up by name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from shoal.workflow import (
    CompiledWorkflow,
    ExecutionContext,
    Plan,
    Stage,
    compile_workflow,
    load_documents,
)

CONTEXT = ExecutionContext(id="0123456789abcdef01234567", number=7, scheduled_at="2026-01-02T03:04:05.000Z")


def workflow(
    spec: Mapping[str, Any], name: str = "wf", labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    return {
        "apiVersion": "testworkflows.testkube.io/v1",
        "kind": "TestWorkflow",
        "metadata": metadata,
        "spec": dict(spec),
    }


def template(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "testworkflows.testkube.io/v1",
        "kind": "TestWorkflowTemplate",
        "metadata": {"name": name},
        "spec": dict(spec),
    }


def compile_spec(
    spec: Mapping[str, Any],
    templates: Mapping[str, Any] | None = None,
    config: Mapping[str, str] | None = None,
    **kw: Any,
) -> CompiledWorkflow:
    return compile_workflow(workflow(spec), templates or {}, config or {}, kw.pop("context", CONTEXT), **kw)


def plan_of(spec: Mapping[str, Any], **kw: Any) -> Plan:
    return compile_spec(spec, **kw).plan


def compile_yaml(text: str, templates: Mapping[str, Any] | None = None, **kw: Any) -> CompiledWorkflow:
    docs = load_documents(text, "wf.yaml")
    tpls = dict(templates or {})
    workflows = []
    for doc in docs:
        if doc.kind == "TestWorkflowTemplate":
            tpls[str(doc.name)] = doc
        else:
            workflows.append(doc)
    assert len(workflows) == 1
    return compile_workflow(workflows[0], tpls, kw.pop("config", {}), kw.pop("context", CONTEXT), **kw)


def by_name(plan: Plan, name: str) -> Stage:
    found = [s for s in plan.stages.values() if s.name == name]
    assert len(found) == 1, f"{len(found)} stages named {name!r}"
    return found[0]


def operations(plan: Plan) -> list[Stage]:
    return [s for s in plan.leaves_and_groups() if s.kind != "group"]


def dump(data: Any) -> str:
    return yaml.safe_dump(data)
