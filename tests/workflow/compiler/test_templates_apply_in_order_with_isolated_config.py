"""`use` at spec/step/service/parallel level, `template`, template config, isolation, global template."""

from __future__ import annotations

import pytest

from shoal.workflow import ResolutionError, WorkflowError, resolve_workflow
from tests.workflow.compiler.compiler_helpers import (
    CONTEXT,
    by_name,
    compile_yaml,
    plan_of,
    template,
    workflow,
)


def _names(plan_or_spec: object) -> list[str]:
    return [s["name"] for s in plan_or_spec]  # type: ignore[attr-defined]


TEMPLATES = {
    "one": template(
        "one",
        {
            "setup": [{"name": "one-setup", "shell": "a"}],
            "steps": [{"name": "one-step", "shell": "a"}],
            "after": [{"name": "one-after", "shell": "a"}],
            "container": {"image": "one:1", "env": [{"name": "A", "value": "one"}]},
            "pod": {"labels": {"from": "one"}},
        },
    ),
    "two": template(
        "two",
        {
            "setup": [{"name": "two-setup", "shell": "b"}],
            "steps": [{"name": "two-step", "shell": "b"}],
            "after": [{"name": "two-after", "shell": "b"}],
            "container": {"image": "two:2", "env": [{"name": "A", "value": "two"}]},
            "pod": {"labels": {"from": "two", "two": "yes"}},
        },
    ),
}


def test_spec_use_first_template_is_outermost() -> None:
    spec = resolve_workflow(
        workflow(
            {
                "use": [{"name": "one"}, {"name": "two"}],
                "setup": [{"name": "own-setup", "shell": "c"}],
                "steps": [{"name": "own-step", "shell": "c"}],
                "after": [{"name": "own-after", "shell": "c"}],
            }
        ),
        TEMPLATES,
        context=CONTEXT,
    )["spec"]
    assert _names(spec["setup"]) == ["one-setup", "two-setup", "own-setup"]
    assert _names(spec["steps"]) == ["one-step", "two-step", "own-step"]
    assert _names(spec["after"]) == ["own-after", "two-after", "one-after"]
    # the workflow overrides the templates, the first template is the base
    assert spec["container"]["image"] == "two:2"
    assert spec["container"]["env"] == [{"name": "A", "value": "two"}]
    assert spec["pod"]["labels"] == {"from": "two", "two": "yes"}
    assert "use" not in spec


def test_workflow_container_wins_over_templates() -> None:
    spec = resolve_workflow(
        workflow(
            {
                "use": [{"name": "one"}],
                "container": {"env": [{"name": "A", "value": "own"}]},
                "steps": [{"shell": "x"}],
            }
        ),
        TEMPLATES,
        context=CONTEXT,
    )["spec"]
    assert spec["container"]["image"] == "one:1"
    assert spec["container"]["env"] == [{"name": "A", "value": "own"}]


def test_step_use_wraps_the_step_steps() -> None:
    spec = resolve_workflow(
        workflow(
            {"steps": [{"name": "s", "use": [{"name": "one"}], "steps": [{"name": "inner", "shell": "x"}]}]}
        ),
        TEMPLATES,
        context=CONTEXT,
    )["spec"]
    step = spec["steps"][0]
    assert _names(step["setup"]) == ["one-setup"]
    assert _names(step["steps"]) == ["one-step", "inner", "one-after"]
    assert step["container"]["image"] == "one:1"


def test_step_template_inserts_an_isolated_group_first() -> None:
    spec = resolve_workflow(
        workflow(
            {
                "steps": [
                    {"name": "s", "template": {"name": "one"}, "steps": [{"name": "inner", "shell": "x"}]}
                ]
            }
        ),
        TEMPLATES,
        context=CONTEXT,
    )["spec"]
    step = spec["steps"][0]
    isolated, inner = step["steps"]
    assert inner["name"] == "inner"
    assert isolated["container"]["image"] == "one:1"  # the template's defaults stay inside
    assert "container" not in step
    plain = {"plain": template("plain", {"steps": [{"name": "p1", "shell": "y"}]})}
    spec = resolve_workflow(
        workflow(
            {
                "steps": [
                    {"name": "s", "template": {"name": "plain"}, "steps": [{"name": "inner", "shell": "x"}]}
                ]
            }
        ),
        plain,
        context=CONTEXT,
    )["spec"]
    assert _names(spec["steps"][0]["steps"]) == ["p1", "inner"]


def test_slash_and_double_dash_name_the_same_template() -> None:
    tpls = {"official--thing--v1": template("official--thing--v1", {"steps": [{"name": "t", "shell": "x"}]})}
    for name in ("official/thing/v1", "official--thing--v1"):
        plan = plan_of({"use": [{"name": name}]}, templates=tpls)
        assert by_name(plan, "t").shell == "x"


def test_template_config_defaults_and_ref_values() -> None:
    tpls = {
        "cfg": template(
            "cfg",
            {
                "config": {
                    "version": {"type": "string", "default": "1.0"},
                    "count": {"type": "integer", "default": "2"},
                    "debug": {"type": "boolean", "default": "false"},
                },
                "steps": [
                    {
                        "name": "t",
                        "shell": "v={{ config.version }} n={{ config.count + 1 }} d={{ config.debug }}",
                    }
                ],
            },
        )
    }
    plan = plan_of({"use": [{"name": "cfg"}]}, templates=tpls)
    assert by_name(plan, "t").shell == "v=1.0 n=3 d=false"
    plan = plan_of(
        {"use": [{"name": "cfg", "config": {"version": "2.5", "count": 10, "debug": "true"}}]}, templates=tpls
    )
    assert by_name(plan, "t").shell == "v=2.5 n=11 d=true"


def test_template_cannot_capture_the_workflow_config() -> None:
    tpls = {
        "cap": template(
            "cap",
            {
                "config": {"name": {"type": "string", "default": "template-default"}},
                "steps": [{"name": "t", "shell": "tpl={{ config.name }}"}],
            },
        )
    }
    plan = plan_of(
        {
            "config": {
                "name": {"type": "string", "default": "workflow-value"},
                "other": {"type": "string", "default": "other-value"},
            },
            "use": [{"name": "cap", "config": {"name": "{{ config.other }}-x"}}],
            "steps": [{"name": "own", "shell": "own={{ config.name }}"}],
        },
        templates=tpls,
    )
    assert by_name(plan, "t").shell == "tpl=other-value-x"
    assert by_name(plan, "own").shell == "own=workflow-value"


def test_template_ref_config_naming_the_same_parameter_keeps_the_workflow_value() -> None:
    tpls = {
        "cap": template(
            "cap",
            {
                "config": {"name": {"type": "string", "default": "template-default"}},
                "steps": [{"name": "t", "shell": "tpl={{ config.name }}"}],
            },
        )
    }
    plan = plan_of(
        {
            "config": {"name": {"type": "string", "default": "from-workflow"}},
            "use": [{"name": "cap", "config": {"name": "{{ config.name }}"}}],
        },
        templates=tpls,
        config={"name": "from-run"},
    )
    assert by_name(plan, "t").shell == "tpl=from-run"


def test_missing_template_is_a_resolution_error_at_the_reference() -> None:
    text = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: wf}
spec:
  steps:
  - name: s
    template:
      name: nope
"""
    with pytest.raises(ResolutionError) as caught:
        compile_yaml(text)
    problem = caught.value.problems[0]
    assert "'nope' not found" in problem.message
    assert (problem.file, problem.line, problem.path) == ("wf.yaml", 8, "spec.steps[0].template.name")


def test_missing_required_template_config_is_a_resolution_error() -> None:
    tpls = {
        "req": template(
            "req",
            {"config": {"message": {"type": "string"}}, "steps": [{"shell": "echo {{ config.message }}"}]},
        )
    }
    with pytest.raises(ResolutionError, match="requires config 'message'"):
        plan_of(
            {"steps": [{"name": "s", "template": {"name": "req", "config": {"other": "x"}}}]}, templates=tpls
        )


def test_template_using_an_undeclared_config_is_a_resolution_error() -> None:
    tpls = {"bad": template("bad", {"steps": [{"shell": "echo {{ config.nothing }}"}]})}
    with pytest.raises(ResolutionError, match=r"config\.nothing"):
        plan_of({"use": [{"name": "bad"}]}, templates=tpls)


def test_service_use_merges_pod_and_container_but_refuses_steps() -> None:
    tpls = {
        "svc": template(
            "svc", {"container": {"env": [{"name": "T", "value": "1"}]}, "pod": {"labels": {"a": "b"}}}
        ),
        "bad": template("bad", {"steps": [{"shell": "x"}]}),
    }
    plan = plan_of(
        {"services": {"db": {"use": [{"name": "svc"}], "image": "pg"}}, "steps": [{"shell": "x"}]},
        templates=tpls,
    )
    start = next(s for s in plan.stages.values() if s.kind == "services-start")
    db = start.spec["services"]["db"]
    assert (
        db["image"] == "pg"
        and db["env"] == [{"name": "T", "value": "1"}]
        and db["pod"]["labels"] == {"a": "b"}
    )
    with pytest.raises(WorkflowError, match="has steps"):
        plan_of(
            {"services": {"db": {"use": [{"name": "bad"}], "image": "pg"}}, "steps": [{"shell": "x"}]},
            templates=tpls,
        )


def test_parallel_use_and_template_resolve_inside_the_worker_spec() -> None:
    tpls = {
        "w": template("w", {"container": {"image": "worker:1"}}),
        "t": template("t", {"steps": [{"name": "from-template", "shell": "t"}]}),
    }
    plan = plan_of(
        {
            "steps": [
                {"name": "p", "parallel": {"count": 2, "use": [{"name": "w"}], "template": {"name": "t"}}}
            ]
        },
        templates=tpls,
    )
    worker = by_name(plan, "p").spec["parallel"]
    assert worker["container"]["image"] == "worker:1"
    assert "use" not in worker and "template" not in worker
    assert worker["steps"][0]["name"] == "from-template"


def test_global_template_is_the_first_use_of_the_workflow_and_its_workers() -> None:
    tpls = {
        "global": template(
            "global",
            {
                "container": {"env": [{"name": "G", "value": "1"}]},
                "steps": [{"name": "global-step", "shell": "g"}],
            },
        ),
        "own": template("own", {"steps": [{"name": "own-step", "shell": "o"}]}),
    }
    plan = plan_of(
        {"use": [{"name": "own"}], "steps": [{"name": "p", "parallel": {"count": 1, "shell": "w"}}]},
        templates=tpls,
        global_template="global",
    )
    names = [n.name for n in plan.signature]
    assert names == ["global-step", "own-step", "p"]
    worker = by_name(plan, "p").spec["parallel"]
    assert worker["steps"][0]["name"] == "global-step"
    assert {"name": "G", "value": "1"} in worker["container"]["env"]
