"""Workflow config: typed values, defaults with expressions, run-time values as plain strings,
required parameters, and sensitive parameters that never appear in the Plan."""

from __future__ import annotations

import json
import shlex

import pytest

from shoal.workflow import ConfigValue, ResolutionError, WorkflowError
from tests.workflow.compiler.compiler_helpers import CONTEXT, by_name, compile_spec, plan_of


def _shell(config: dict[str, object], shell: str, values: dict[str, str] | None = None) -> str:
    plan = plan_of({"config": config, "steps": [{"name": "s", "shell": shell}]}, config=values or {})
    result = by_name(plan, "s").shell
    assert result is not None
    return result


def test_types_cast_values() -> None:
    config = {
        "i": {"type": "integer", "default": "7"},
        "n": {"type": "number", "default": "1.5"},
        "b": {"type": "boolean", "default": "off"},
        "s": {"type": "string", "default": 12},
    }
    assert (
        _shell(config, "{{ config.i + 1 }} {{ config.n * 2 }} {{ config.b }} {{ config.s + 1 }}")
        == "8 3 false 121"
    )
    assert _shell(config, "{{ config.i }} {{ config.n }}", {"i": "41", "n": "2.25"}) == "41 2.25"


def test_number_is_a_float_not_truncated() -> None:
    # Testkube's snapshot truncates `number` to an int; shoal keeps the float (documented difference)
    assert _shell({"n": {"type": "number"}}, "{{ config.n }}", {"n": "3.75"}) == "3.75"


def test_bad_typed_run_time_value_is_a_problem() -> None:
    with pytest.raises(WorkflowError, match="expected an integer"):
        _shell({"i": {"type": "integer"}}, "{{ config.i }}", {"i": "many"})


def test_defaults_may_use_expressions() -> None:
    config = {
        "id": {"type": "string", "default": "run-{{ execution.id }}"},
        "twice": {"type": "integer", "default": "{{ 2 * 21 }}"},
    }
    assert _shell(config, "{{ config.id }} {{ config.twice }}") == f"run-{CONTEXT.id} 42"


@pytest.mark.parametrize(
    "value", ["{{ 1+1 }}", "$(rm -rf /)", "config.other", "{{ env.HOME }}", "a}}b{{c", "'; echo pwned; '"]
)
def test_run_time_values_are_plain_strings(value: str) -> None:
    plan = plan_of(
        {
            "config": {"x": {"type": "string"}},
            "steps": [
                {
                    "name": "s",
                    "shell": "echo {{ shellquote(config.x) }}",
                    "run": {"image": "alpine", "env": [{"name": "X", "value": "{{ config.x }}"}]},
                }
            ],
        },
        config={"x": value},
    )
    assert plan.config["x"] == ConfigValue(value)
    run = next(s for s in plan.stages.values() if s.kind == "run")
    env = {e.name: e.value for e in run.env}
    # the env value is a template: rendering it at run time must give back the exact characters
    from shoal.workflow import compile_template

    assert compile_template(env["X"] or "").resolve(final=True).value() == value
    shell = next(s for s in plan.stages.values() if s.kind == "shell").shell or ""
    rendered = compile_template(shell).resolve(final=True).value()
    assert shlex.split(rendered) == ["echo", value]


def test_undeclared_run_time_keys_are_ignored() -> None:
    plan = plan_of({"steps": [{"shell": "x"}]}, config={"nobody": "asked"})
    assert plan.config == {}


def test_required_parameter_without_value_fails_resolution_where_it_is_used() -> None:
    spec = {
        "config": {"must": {"type": "string"}},
        "steps": [{"name": "s", "shell": "echo {{ config.must }}"}],
    }
    with pytest.raises(ResolutionError) as caught:
        plan_of(spec)
    assert "'must' is required" in caught.value.problems[0].message
    assert caught.value.problems[0].path == "spec.steps[0].shell"
    assert by_name(plan_of(spec, config={"must": "ok"}), "s").shell == "echo ok"
    # declared but never used: nothing to resolve, nothing fails
    assert plan_of({"config": {"must": {"type": "string"}}, "steps": [{"shell": "x"}]}).config == {}


def test_sensitive_values_never_reach_the_plan() -> None:
    secret = "s3cr3t-VALUE-42"
    compiled = compile_spec(
        {
            "config": {
                "token": {"type": "string", "sensitive": True},
                "pin": {"type": "integer", "sensitive": True, "default": "9876"},
            },
            "steps": [
                {
                    "name": "use",
                    "shell": "login {{ config.token }} {{ config.pin + 1 }}",
                    "run": {"image": "alpine", "env": [{"name": "T", "value": "{{ config.token }}"}]},
                }
            ],
        },
        config={"token": secret},
    )
    text = json.dumps(compiled.plan.to_dict())
    assert secret not in text and "9876" not in text
    assert compiled.plan.config["token"] == ConfigValue(None, sensitive=True)
    assert compiled.plan.sensitive_env == {"SHOAL_SECRET_TOKEN": "token", "SHOAL_SECRET_PIN": "pin"}
    assert compiled.secrets == {"SHOAL_SECRET_TOKEN": secret, "SHOAL_SECRET_PIN": "9876"}
    shell = next(s for s in compiled.plan.stages.values() if s.kind == "shell").shell or ""
    assert "{{env.SHOAL_SECRET_TOKEN}}" in shell and "int(env.SHOAL_SECRET_PIN)" in shell


def test_plan_records_config_values_and_their_origin() -> None:
    plan = plan_of(
        {
            "config": {"a": {"type": "string", "default": "x"}, "b": {"type": "integer", "default": "1"}},
            "steps": [{"shell": "x"}],
        },
        config={"b": "5"},
    )
    assert plan.config == {"a": ConfigValue("x", default=True), "b": ConfigValue("5")}
