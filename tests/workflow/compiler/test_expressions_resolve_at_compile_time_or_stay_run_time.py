"""Compile-time variables are substituted; run-time names stay; anything else is a located problem."""

from __future__ import annotations

import pytest

from shoal.workflow import RUNTIME_FUNCTIONS, ExecutionContext, WorkflowError
from tests.workflow.compiler.compiler_helpers import CONTEXT, by_name, compile_yaml, plan_of


def _shell(shell: str, **kw: object) -> str:
    plan = plan_of({"steps": [{"name": "s", "shell": shell}]}, **kw)  # type: ignore[arg-type]
    return by_name(plan, "s").shell or ""


def test_execution_and_workflow_variables_are_substituted() -> None:
    context = ExecutionContext(
        id="aaaaaaaaaaaaaaaaaaaaaaaa",
        number=3,
        organization="org-1",
        environment="env-1",
        dashboard_url="https://dash",
        scheduled_at="2026-05-06T07:08:09.000Z",
        running_context={"actor": {"name": "ann", "type": "user"}},
    )
    shell = (
        "{{ execution.id }} {{ execution.number }} {{ execution.name }} {{ workflow.name }} "
        "{{ resource.id }} {{ resource.root }} {{ organization.id }} {{ environment.id }} {{ dashboard.url }} "
        "{{ execution.runningContext.actor.name }} {{ execution.groupId }}"
    )
    assert _shell(shell, context=context) == (
        "aaaaaaaaaaaaaaaaaaaaaaaa 3 wf-3 wf aaaaaaaaaaaaaaaaaaaaaaaa aaaaaaaaaaaaaaaaaaaaaaaa org-1 env-1 "
        "https://dash ann aaaaaaaaaaaaaaaaaaaaaaaa"
    )


def test_labels_are_available_with_mangled_keys() -> None:
    from shoal.workflow import compile_workflow
    from tests.workflow.compiler.compiler_helpers import workflow

    data = workflow(
        {"steps": [{"name": "s", "shell": "{{ labels.app_kubernetes_io_name }} {{ workflow.labels.team }}"}]},
        labels={"app.kubernetes.io/name": "shop", "team": "blue"},
    )
    plan = compile_workflow(data, {}, {}, CONTEXT).plan
    assert by_name(plan, "s").shell == "shop blue"
    assert plan.labels == {"app.kubernetes.io/name": "shop", "team": "blue"}


@pytest.mark.parametrize(
    "shell",
    [
        "{{ env.HOME }}",
        "{{ step.results }}",
        "{{ step.build.outputs.token }}",
        "{{ self.status }}",
        "{{ output.x }}",
        "{{ services.db.0.ip }}",
        "{{ file('/tmp/x') }}",
        "{{ len(glob('/data/**')) }}",
        "{{ shellquote(env.A, env.B) }}",
        "{{ trim(string(env.X)) }}",
        "{{ join(split('a,b'), env.SEP) }}",
        '{{ at(services, "name-with-dash").0.ip }}',
    ],
)
def test_run_time_names_stay_symbolic(shell: str) -> None:
    out = _shell(shell)
    assert out.startswith("{{") and out.endswith("}}")


def test_static_function_calls_are_folded() -> None:
    assert _shell("{{ tojson(list(1, 2)) }} {{ len('abc') }} {{ shellquote('a b') }}") == "[1,2] 3 'a b'"


def test_unknown_variable_is_reported_with_field_position_and_offset() -> None:
    text = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: wf}
spec:
  steps:
  - name: s
    shell: echo {{ confg.x }}
"""
    with pytest.raises(WorkflowError) as caught:
        compile_yaml(text)
    problem = caught.value.problems[0]
    assert (problem.file, problem.line, problem.path) == ("wf.yaml", 7, "spec.steps[0].shell")
    assert "unknown variable 'confg.x' at position 8" in problem.message


def test_syntax_error_names_the_expression_and_position() -> None:
    with pytest.raises(WorkflowError) as caught:
        _shell("echo {{ 1 + }}")
    problem = caught.value.problems[0]
    assert problem.path == "spec.steps[0].shell"
    assert "{{ 1 + }}" in problem.message


def test_functions_the_init_program_cannot_run_are_rejected_when_not_static() -> None:
    with pytest.raises(WorkflowError) as caught:
        _shell("{{ tojson(env.X) }}")
    assert "function 'tojson' at position 3" in caught.value.problems[0].message
    assert "tojson" not in RUNTIME_FUNCTIONS


def test_instance_variables_outside_parallel_are_unknown() -> None:
    with pytest.raises(WorkflowError, match="unknown variable 'index'"):
        _shell("{{ index }}")


def test_instance_variables_stay_inside_parallel_and_services() -> None:
    plan = plan_of(
        {
            "services": {
                "db": {"image": "pg", "shell": "echo {{ index }} {{ matrix.v }}", "matrix": {"v": ["a", "b"]}}
            },
            "steps": [{"name": "p", "parallel": {"count": 2, "shell": "echo {{ index }}/{{ count }}"}}],
        }
    )
    assert by_name(plan, "p").spec["parallel"]["shell"] == "echo {{index}}/{{count}}"
    start = next(s for s in plan.stages.values() if s.kind == "services-start")
    assert start.spec["services"]["db"]["shell"] == "echo {{index}} {{matrix.v}}"


def test_pod_and_job_fields_must_be_static() -> None:
    plan = plan_of(
        {
            "config": {"namespace": {"type": "string", "default": "ns-{{ execution.number }}"}},
            "job": {"namespace": "{{ config.namespace }}", "labels": {"run": "{{ execution.id }}"}},
            "pod": {"labels": {"w": "{{ workflow.name }}"}},
            "steps": [{"shell": "x"}],
        }
    )
    assert plan.job == {"namespace": "ns-7", "labels": {"run": CONTEXT.id}}
    assert plan.pod == {"labels": {"w": "wf"}}
    with pytest.raises(WorkflowError, match="must be known before the run starts"):
        plan_of({"job": {"namespace": "{{ env.NS }}"}, "steps": [{"shell": "x"}]})
    with pytest.raises(WorkflowError, match="must be known before the run starts"):
        plan_of({"steps": [{"run": {"image": "{{ env.IMAGE }}"}}]})


def test_execution_tags_merge_spec_and_run_tags() -> None:
    context = ExecutionContext(id="bbbbbbbbbbbbbbbbbbbbbbbb", tags={"from-run": "yes", "shared": "run"})
    plan = plan_of(
        {
            "execution": {"tags": {"id": "{{ execution.id }}", "shared": "spec"}},
            "steps": [{"name": "s", "shell": "{{ execution.tags.shared }}"}],
        },
        context=context,
    )
    assert plan.tags == {"id": "bbbbbbbbbbbbbbbbbbbbbbbb", "shared": "run", "from-run": "yes"}
    assert by_name(plan, "s").shell == "run"


def test_pvc_names_are_known_at_compile_time() -> None:
    plan = plan_of(
        {
            "pvcs": {"cache": {"resources": {"requests": {"storage": "1Gi"}}}},
            "pod": {
                "volumes": [{"name": "c", "persistentVolumeClaim": {"claimName": "{{ pvcs.cache.name }}"}}]
            },
            "steps": [{"shell": "x"}],
        }
    )
    assert plan.pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == f"{CONTEXT.id}-cache"
    assert plan.pvcs == {"cache": {"resources": {"requests": {"storage": "1Gi"}}}}


def test_secret_and_credential_become_env_vars() -> None:
    plan = plan_of(
        {"steps": [{"name": "s", "shell": "{{ secret('db', 'password') }} {{ credential('api') }}"}]}
    )
    stage = by_name(plan, "s")
    refs = {e.name: e.value_from for e in stage.env if e.sensitive}
    assert {"secretKeyRef": {"name": "db", "key": "password"}} in refs.values()
    assert {"credentialRef": {"name": "api"}} in refs.values()
    for name in refs:
        assert "{{env." + name + "}}" in (stage.shell or "")


def test_argv_items_that_are_pure_list_expressions_expand() -> None:
    plan = plan_of(
        {
            "config": {"extra": {"type": "string", "default": "-a,-b"}},
            "steps": [
                {
                    "name": "r",
                    "run": {
                        "image": "alpine",
                        "command": ["tool"],
                        "args": ["{{ split(config.extra) }}", "x{{ 1 }}", "{{ env.Y }}"],
                    },
                }
            ],
        }
    )
    stage = by_name(plan, "r")
    assert stage.command == ["tool"]
    assert stage.args == ["-a", "-b", "x1", "{{env.Y}}"]
