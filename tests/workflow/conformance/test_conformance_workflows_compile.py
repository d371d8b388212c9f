"""Every TestWorkflow of the Testkube corpus compiles with the corpus templates, or fails resolution
exactly where Testkube fails the execution."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from shoal.workflow import (
    Bundle,
    Plan,
    ResolutionError,
    SignatureNode,
    compile_workflow,
    load_bundle,
)
from tests.workflow.compiler.compiler_helpers import CONTEXT

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "testkube"

# Documents whose expected failure is a resolution failure, and the name the error must carry.
RESOLUTION_FAILURES = {
    "expected-fail-missing-template": "some-non-existant-template-name",
    "expected-fail-template-missing-config-options": "message",
    "expected-fail-template-not-defined-config-options": "message",
    "expected-fail-volume-not-mounted": "missing-volume",
}


@cache
def corpus() -> Bundle:
    return load_bundle([CORPUS / "workflows", CORPUS / "templates"])


def workflow_names() -> list[str]:
    return sorted(str(doc.name) for doc in corpus().workflows)


def test_the_corpus_is_all_there() -> None:
    assert len(workflow_names()) >= 90
    assert set(RESOLUTION_FAILURES) <= set(workflow_names())


def _signature_refs(nodes: list[SignatureNode]) -> list[str]:
    out: list[str] = []
    for node in nodes:
        out.append(node.ref)
        out.extend(_signature_refs(node.children))
    return out


def _check_plan(plan: Plan) -> None:
    # JSON round trip is lossless
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    # every signature node is a stage with a name; every stage but virtual groups is in the signature
    refs = _signature_refs(plan.signature)
    assert len(refs) == len(set(refs))
    for ref in refs:
        assert ref in plan.stages
        assert plan.stages[ref].name or plan.stages[ref].category
    for stage in plan.stages.values():
        if stage.ref != plan.root and not stage.virtual:
            assert stage.ref in refs, stage
    # each operation runs in exactly one container, in depth-first order
    executed = [a.ref for c in plan.containers for a in c.actions if a.op == "exec"]
    leaves = [s.ref for s in plan.leaves_and_groups() if s.kind != "group"]
    assert executed == leaves
    for container in plan.containers:
        assert container.image
        for action in container.actions:
            if action.op == "exec":
                assert plan.stages[action.ref].container == container.index
    for entry in plan.files:
        assert entry["ref"] in plan.stages
    # starts and ends are balanced and nested across the container sequence
    stack: list[str] = []
    for action in (a for c in plan.containers for a in c.actions):
        if action.op == "start":
            stack.append(action.ref)
        elif action.op == "end":
            assert stack.pop() == action.ref
    assert stack == []


@pytest.mark.parametrize("name", workflow_names())
def test_workflow_compiles_or_fails_resolution(name: str) -> None:
    bundle = corpus()
    doc = bundle.workflow(name)
    if name in RESOLUTION_FAILURES:
        with pytest.raises(ResolutionError) as caught:
            compile_workflow(doc, bundle.templates, {}, CONTEXT)
        problem = caught.value.problems[0]
        assert RESOLUTION_FAILURES[name] in problem.message
        assert problem.line is not None and problem.file is not None
        return
    plan = compile_workflow(doc, bundle.templates, {}, CONTEXT).plan
    assert plan.workflow == name
    _check_plan(plan)
    # names of the named steps of the document survive into the signature
    text = json.dumps([n.to_dict() for n in plan.signature])
    for step in (doc.data.get("spec") or {}).get("steps") or []:
        if isinstance(step.get("name"), str) and "{{" not in step["name"]:
            assert json.dumps(step["name"])[1:-1] in text


def test_compiling_twice_gives_the_same_plan() -> None:
    bundle = corpus()
    for name in ("k6-distributed", "special-cases-step-env-override", "expected-fail-timeout-step"):
        first = compile_workflow(bundle.workflow(name), bundle.templates, {}, CONTEXT).plan
        second = compile_workflow(bundle.workflow(name), bundle.templates, {}, CONTEXT).plan
        assert first.to_dict() == second.to_dict()


def test_timeout_step_plan_matches_testkube_semantics() -> None:
    bundle = corpus()
    plan = compile_workflow(bundle.workflow("expected-fail-timeout-step"), bundle.templates, {}, CONTEXT).plan
    names = [(n.name, n.category) for n in plan.signature]
    assert names == [
        ("Clone Git repository", "Clone Git repository"),
        ("Install dependencies", "Run shell command"),
        ("Run tests", "Run shell command"),
        ("Run tests", "Run shell command"),
        ("Save artifacts", "Upload artifacts"),
    ]
    clone, install, run, always, save = (plan.stages[n.ref] for n in plan.signature)
    assert run.timeout_ms == 1000
    assert always.condition == "true"
    # artifacts alone in their step: `passed&&always` -> skipped after an earlier failure
    assert save.condition == f"{always.ref}&&{run.ref}&&{install.ref}&&{clone.ref}"
    assert plan.stages[plan.root].result == "&&".join([clone.ref, install.ref, run.ref, always.ref, save.ref])
