"""Properties: compiled Plans survive JSON; random spec trees compile or raise WorkflowError, never crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.workflow import Plan, WorkflowError, compile_workflow
from tests.workflow.compiler.compiler_helpers import CONTEXT, template, workflow

names = st.text(alphabet="abcdefgh xyz-_", min_size=1, max_size=12)
scripts = st.one_of(
    st.sampled_from(
        [
            "echo hi",
            "exit 1",
            "echo {{ config.word }}",
            "echo {{ env.HOME }}",
            "ls {{ step.results }}",
            "echo {{ execution.id }}",
            "echo {{ len(config.word) }}",
        ]
    ),
    st.text(alphabet="abc ;$()'\"{}", max_size=20),
)
conditions = st.sampled_from(
    [
        "passed",
        "failed",
        "always",
        "never",
        "status == 'failed'",
        "env.X == '1'",
        "config.flag",
        "!passed || always",
    ]
)


@st.composite
def steps(draw: Any, depth: int = 0) -> dict[str, Any]:
    step: dict[str, Any] = {}
    if draw(st.booleans()):
        step["name"] = draw(names)
    kind = draw(
        st.sampled_from(
            ["shell", "run", "group", "artifacts", "parallel", "delay"]
            if depth < 2
            else ["shell", "run", "artifacts", "delay"]
        )
    )
    if kind == "shell":
        step["shell"] = draw(scripts)
    elif kind == "run":
        step["run"] = {
            "image": draw(st.sampled_from(["alpine", "debian", "busybox"])),
            "args": draw(st.lists(scripts, max_size=3)),
        }
    elif kind == "group":
        step["steps"] = draw(st.lists(steps(depth + 1), min_size=0, max_size=3))
    elif kind == "artifacts":
        step["artifacts"] = {"paths": ["*.xml"]}
    elif kind == "delay":
        step["delay"] = draw(st.sampled_from(["1s", "500ms", "1m"]))
    else:
        step["parallel"] = {"count": draw(st.integers(0, 3)), "shell": "echo {{ index }}"}
    for flag in ("optional", "negative", "pure", "paused"):
        if draw(st.integers(0, 4)) == 0:
            step[flag] = True
    if draw(st.integers(0, 3)) == 0:
        step["condition"] = draw(conditions)
    if draw(st.integers(0, 4)) == 0:
        step["timeout"] = draw(st.sampled_from(["5s", "1m30s"]))
    if draw(st.integers(0, 4)) == 0:
        step["retry"] = {"count": draw(st.integers(1, 3)), "until": "self.passed"}
    if draw(st.integers(0, 4)) == 0:
        step["use"] = [{"name": "tpl"}]
    return step


TEMPLATES = {
    "tpl": template(
        "tpl",
        {
            "container": {"env": [{"name": "T", "value": "t"}]},
            "steps": [{"name": "from-tpl", "shell": "echo"}],
        },
    )
}


@st.composite
def specs(draw: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "config": {
            "word": {"type": "string", "default": "w"},
            "flag": {"type": "boolean", "default": "true"},
        },
        "steps": draw(st.lists(steps(), min_size=1, max_size=5)),
    }
    if draw(st.booleans()):
        spec["system"] = {"pureByDefault": draw(st.booleans()), "isolatedContainers": draw(st.booleans())}
    if draw(st.booleans()):
        spec["container"] = {"image": "alpine", "env": [{"name": "G", "value": "g", "global": True}]}
    return spec


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs(), st.dictionaries(st.sampled_from(["word", "flag", "other"]), st.text(max_size=10), max_size=3))
def test_compiled_plans_round_trip_through_json(spec: dict[str, Any], config: dict[str, str]) -> None:
    try:
        plan = compile_workflow(workflow(spec), TEMPLATES, config, CONTEXT).plan
    except WorkflowError as exc:
        assert exc.problems
        return
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    executed = [a.ref for c in plan.containers for a in c.actions if a.op == "exec"]
    assert executed == [s.ref for s in plan.leaves_and_groups() if s.kind != "group"]


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(alphabet="ab{}$.() ", max_size=12)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "name",
                    "shell",
                    "steps",
                    "run",
                    "image",
                    "condition",
                    "parallel",
                    "count",
                    "matrix",
                    "use",
                    "config",
                    "container",
                    "env",
                    "value",
                    "timeout",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    json_values, st.sampled_from(["steps", "setup", "after", "container", "services", "config", "pod", "use"])
)
def test_random_spec_trees_never_crash_the_compiler(value: Any, key: str) -> None:
    spec: dict[str, Any] = {"steps": [{"name": "base", "shell": "echo"}]}
    spec[key] = value
    try:
        compile_workflow(workflow(spec), TEMPLATES, {}, CONTEXT)
    except WorkflowError as exc:
        assert all(str(p) for p in exc.problems)


STEP_KEYS = [
    "name",
    "shell",
    "run",
    "steps",
    "setup",
    "condition",
    "timeout",
    "retry",
    "delay",
    "content",
    "services",
    "parallel",
    "execute",
    "artifacts",
    "container",
    "workingDir",
    "use",
    "template",
    "paused",
    "pure",
    "optional",
    "negative",
    "id",
]
step_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(
        [
            "",
            "x",
            "{{ env.A }}",
            "{{ config.word }}",
            "passed",
            "1s",
            "{{ 1 + }}",
            "{{ index }}",
            "{{ secret('a', 'b') }}",
            "always",
        ]
    ),
)
step_values = st.recursive(
    step_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    *STEP_KEYS,
                    "image",
                    "count",
                    "matrix",
                    "shards",
                    "paths",
                    "workflows",
                    "env",
                    "value",
                    "git",
                    "uri",
                    "files",
                    "path",
                    "config",
                    "until",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=15,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(STEP_KEYS), step_values, max_size=4))
def test_random_steps_never_crash_the_compiler(step: dict[str, Any]) -> None:
    spec = {
        "config": {"word": {"type": "string", "default": "w"}},
        "steps": [{"name": "base", "shell": "echo"}, step],
    }
    try:
        plan = compile_workflow(workflow(spec), TEMPLATES, {}, CONTEXT).plan
    except WorkflowError as exc:
        assert exc.problems
        return
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
