"""Each wrong field gives one problem: file, line, column, the field path and what was expected."""

from __future__ import annotations

import pytest

from shoal.workflow._errors import WorkflowError
from shoal.workflow._spec import (
    IndependentStep,
    Step,
    TestWorkflow,
    TestWorkflowExecution,
    TestWorkflowTemplate,
)
from shoal.workflow._validate import parse_workflow, validate_document, validate_documents
from shoal.workflow._yaml import load_documents

from .spec_helpers import VALID, problems_of

HEADER = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: wf\nspec:\n"


def _spec(body: str) -> list[str]:
    """Problems of a workflow whose spec is ``body`` (indented by two spaces; line 6 is its first line)."""
    return problems_of(HEADER + body)


def test_the_valid_example_has_no_problems() -> None:
    assert problems_of(VALID) == []


def test_unknown_fields_suggest_close_names() -> None:
    assert _spec("  steps:\n  - name: a\n    retyr: {count: 1}\n    Shell: echo\n") == [
        "wf.yaml:8:5: spec.steps[0].retyr: unknown field 'retyr' (did you mean retry?)",
        "wf.yaml:9:5: spec.steps[0].Shell: unknown field 'Shell' (did you mean shell?)",
    ]


def test_unknown_fields_without_a_close_name_list_what_is_allowed() -> None:
    assert _spec("  system:\n    zzz: true\n") == [
        "wf.yaml:7:5: spec.system.zzz: unknown field 'zzz' (expected one of: isolatedContainers, pureByDefault)"
    ]


def test_wrong_types_say_what_was_expected() -> None:
    assert _spec(
        "  container:\n    image: 5\n    env:\n    - name: A\n      value: true\n      global: 'yes'\n"
        "  steps:\n  - retry: {count: abc}\n    optional: yes\n    steps: {}\n"
    ) == [
        "wf.yaml:7:12: spec.container.image: expected a string, got 5 (put it in quotes)",
        "wf.yaml:10:14: spec.container.env[0].value: expected a string, got true "
        "(put it in quotes: 'true' and 'false' are booleans in YAML)",
        "wf.yaml:11:15: spec.container.env[0].global: expected true or false, got 'yes' "
        "(YAML 1.2 reads yes/no/on/off as strings)",
        "wf.yaml:13:20: spec.steps[0].retry.count: expected an integer, got 'abc'",
        "wf.yaml:14:15: spec.steps[0].optional: expected true or false, got 'yes' "
        "(YAML 1.2 reads yes/no/on/off as strings)",
        "wf.yaml:15:12: spec.steps[0].steps: expected a list, got a mapping",
    ]


def test_durations_delays_and_ids_are_checked() -> None:
    assert _spec("  steps:\n  - timeout: 10 minutes\n    delay: 1.5s\n    id: Build-1\n") == [
        "wf.yaml:7:14: spec.steps[0].timeout: expected a duration such as 30s, 5m or 1h30m "
        "(or a {{ }} expression), got '10 minutes'",
        "wf.yaml:8:12: spec.steps[0].delay: expected a delay such as 500ms, 10s or 1m30s, got '1.5s'",
        "wf.yaml:9:9: spec.steps[0].id: expected an id of lower-case letters, digits and '_' "
        "that starts with a letter or digit, got 'Build-1'",
    ]


@pytest.mark.parametrize(
    "timeout", ["30s", "1h30m", "1.5h", "100ms", "2h45m10s", "{{ config.timeout }}", "0"]
)
def test_valid_timeouts_pass(timeout: str) -> None:
    assert _spec(f"  steps:\n  - shell: echo\n    timeout: '{timeout}'\n") == []


def test_expressions_are_accepted_where_numbers_are() -> None:
    body = (
        "  steps:\n  - parallel:\n      count: '{{ config.workers }}'\n      maxCount: 'config.max'\n"
        "      parallelism: '{{ config.p }}'\n      matrix: {browser: 'config.browsers', os: [linux, mac]}\n"
        "      shards: {files: 'glob(\"/data/*\")'}\n      shell: echo\n"
        "    execute:\n      parallelism: 2\n      workflows:\n      - name: other\n        count: 3\n"
    )
    assert _spec(body) == []


def test_enumerations_list_their_values() -> None:
    assert _spec(
        "  config:\n    n: {type: int}\n  container:\n    imagePullPolicy: Sometimes\n"
        "  content:\n    git: {uri: x, authType: token, verbosity: loud}\n"
    ) == [
        "wf.yaml:7:15: spec.config.n.type: expected one of 'string', 'integer', 'number' or 'boolean', got 'int'",
        "wf.yaml:9:22: spec.container.imagePullPolicy: expected Always, IfNotPresent or Never, got 'Sometimes'",
        "wf.yaml:11:29: spec.content.git.authType: expected one of 'basic', 'header' or 'github', got 'token'",
        "wf.yaml:11:47: spec.content.git.verbosity: expected one of 'quiet', 'normal' or 'verbose', got 'loud'",
    ]


def test_bounds_are_checked() -> None:
    assert _spec(
        "  steps:\n  - shell: echo\n    retry: {count: 0}\n    content:\n      git: {retry: {count: 50}}\n"
    ) == [
        "wf.yaml:8:20: spec.steps[0].retry.count: expected an integer of at least 1, got 0",
        "wf.yaml:10:28: spec.steps[0].content.git.retry.count: expected an integer of at most 20, got 50",
    ]


def test_int_or_string_fields_refuse_other_values() -> None:
    assert _spec(
        "  config:\n    n: {type: number, default: 1.5}\n  steps:\n  - parallel: {count: [1], shell: x}\n"
    ) == [
        "wf.yaml:7:32: spec.config.n.default: expected an integer or a string, got 1.5 (put it in quotes)",
        "wf.yaml:9:23: spec.steps[0].parallel.count: expected an integer or a string, got a list",
    ]


def test_missing_required_fields_are_named() -> None:
    assert _spec(
        "  container:\n    env:\n    - value: x\n  steps:\n  - retry: {until: passed}\n    artifacts:\n"
        "      compress: {}\n"
    ) == [
        "wf.yaml:8:7: spec.container.env[0].name: required field 'name' is missing",
        "wf.yaml:10:12: spec.steps[0].retry.count: required field 'count' is missing",
        "wf.yaml:12:17: spec.steps[0].artifacts.compress.name: required field 'name' is missing",
    ]


def test_shell_cannot_be_combined_with_command_or_args() -> None:
    assert _spec("  steps:\n  - run:\n      shell: echo\n      args: [x]\n") == [
        "wf.yaml:8:7: spec.steps[0].run: 'shell' cannot be combined with 'command' or 'args'"
    ]


def test_executed_workflows_need_a_name_or_a_selector() -> None:
    assert _spec("  steps:\n  - execute:\n      workflows:\n      - description: x\n") == [
        "wf.yaml:9:9: spec.steps[0].execute.workflows[0]: a workflow to execute needs a 'name' or a 'selector'"
    ]


def test_parallel_is_not_a_step() -> None:
    # parallel takes no workingDir / name of its own (Testkube's StepParallel has neither)
    problems = _spec("  steps:\n  - parallel:\n      workingDir: /x\n      shell: echo\n")
    assert len(problems) == 1
    assert problems[0].startswith(
        "wf.yaml:8:7: spec.steps[0].parallel.workingDir: unknown field 'workingDir' (expected one of: after, "
    )


def test_templates_cannot_use_other_templates() -> None:
    text = (
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflowTemplate\nmetadata: {name: official--k6--v1}\n"
        "spec:\n  use: [{name: other}]\n  steps:\n  - template: {name: other}\n"
    )
    assert problems_of(text) == [
        "wf.yaml:5:3: spec.use: unknown field 'use' (expected one of: after, concurrency, config, container, "
        "content, events, execution, job, notifications, pod, pvcs, services, setup, steps, system, timeouts)",
        "wf.yaml:7:5: spec.steps[0].template: unknown field 'template' (expected one of: artifacts, condition, "
        "container, content, delay, execute, id, name, negative, optional, parallel, paused, pure, retry, run, "
        "services, setup, shell, steps, timeout, workingDir)",
    ]


def test_api_version_kind_and_name_are_checked_first() -> None:
    text = "apiVersion: testkube.io/v1\nkind: TestWorkflow\nmetadata:\n  name: Bad_Name\n"
    assert problems_of(text) == [
        "wf.yaml:1:13: apiVersion: unsupported apiVersion 'testkube.io/v1' (expected testworkflows.testkube.io/v1)",
        "wf.yaml:4:9: metadata.name: invalid name 'Bad_Name': expected lower-case letters, digits, '-', '.', "
        "starting and ending with a letter or digit, at most 253 characters",
    ]


def test_other_kinds_name_the_supported_ones() -> None:
    assert problems_of("apiVersion: testworkflows.testkube.io/v1\nkind: Test\nmetadata: {name: x}\n") == [
        "wf.yaml:2:7: kind: unsupported kind 'Test' (supported kinds: TestWorkflow, TestWorkflowTemplate)"
    ]


def test_missing_header_fields() -> None:
    assert problems_of("spec: {}\n") == [
        "wf.yaml:1:1: apiVersion: apiVersion is missing (expected testworkflows.testkube.io/v1)",
        "wf.yaml:1:1: kind: kind is missing (expected one of: TestWorkflow, TestWorkflowTemplate)",
        "wf.yaml:1:1: metadata: metadata is missing (it needs at least a name)",
    ]
    assert problems_of(HEADER.replace("  name: wf\n", "  labels: {a: b}\n")) == [
        "wf.yaml:4:3: metadata.name: metadata.name is missing"
    ]


def test_template_names_may_use_slashes_or_double_dashes() -> None:
    for name in ("official/k6/v1", "official--k6--v1"):
        text = f"apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflowTemplate\nmetadata: {{name: '{name}'}}\n"
        assert problems_of(text) == []
    assert problems_of(HEADER.replace("name: wf", "name: a/b")) == [
        "wf.yaml:4:9: metadata.name: invalid name 'a/b': expected lower-case letters, digits, '-', '.', "
        "starting and ending with a letter or digit, at most 253 characters"
    ]


def test_problems_are_sorted_by_line_and_never_use_pydantic_wording() -> None:
    body = "  steps:\n" + "".join(
        f"  - retry: {{count: x{i}}}\n    pure: 'no'\n    bogus: 1\n" for i in range(5)
    )
    problems = _spec(body)
    assert len(problems) == 15
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)
    for problem in problems:
        assert "Input should" not in problem
        assert "http" not in problem
        assert "pydantic" not in problem


def test_duplicate_names_across_documents_are_reported() -> None:
    docs = load_documents(VALID + "---\n" + VALID, "two.yaml")
    assert [str(p) for p in validate_documents(docs)] == [
        "two.yaml:20:9: metadata.name: duplicate TestWorkflow 'demo' (also defined at two.yaml:4)"
    ]


def test_parse_workflow_returns_the_model() -> None:
    (doc,) = load_documents(VALID)
    workflow = parse_workflow(doc)
    assert isinstance(workflow, TestWorkflow)
    assert workflow.spec.steps is not None
    step = workflow.spec.steps[0]
    assert isinstance(step, Step)
    assert (step.name, step.shell, step.timeout) == ("Build", "echo hi", "30s")
    assert step.retry is not None and step.retry.count == 2
    assert workflow.spec.config is not None and workflow.spec.config["workers"].default == 2
    assert workflow.model_dump(exclude_none=True)["spec"]["container"] == {"image": "busybox:1.36"}


def test_parse_workflow_returns_templates_with_independent_steps() -> None:
    text = VALID.replace("kind: TestWorkflow", "kind: TestWorkflowTemplate")
    template = parse_workflow(load_documents(text)[0])
    assert isinstance(template, TestWorkflowTemplate)
    assert template.spec.steps is not None and isinstance(template.spec.steps[0], IndependentStep)


def test_parse_workflow_raises_with_every_problem() -> None:
    (doc,) = load_documents(HEADER + "  steps:\n  - retry: 1\n    bogus: 2\n", "x.yaml")
    with pytest.raises(WorkflowError) as caught:
        parse_workflow(doc)
    assert [str(p) for p in caught.value.problems] == [str(p) for p in validate_document(doc)]
    assert len(caught.value.problems) == 2


def test_snake_case_names_are_not_accepted_in_documents() -> None:
    assert _spec("  container:\n    image_pull_policy: Always\n") == [
        "wf.yaml:7:5: spec.container.image_pull_policy: unknown field 'image_pull_policy' "
        "(did you mean imagePullPolicy?)"
    ]


def test_execution_requests_have_a_model_but_are_not_a_supported_kind() -> None:
    text = (
        "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflowExecution\nmetadata: {name: run-1}\n"
        "spec:\n  testWorkflow: {name: demo}\n  executionRequest:\n    config: {workers: 3}\n"
        "    runningContext: {interface: {type: cli}, actor: {type: user, name: me}}\n"
    )
    (doc,) = load_documents(text)
    request = TestWorkflowExecution.model_validate(doc.data, by_name=False)
    assert request.spec.test_workflow.name == "demo"
    assert request.spec.execution_request is not None
    assert request.spec.execution_request.config == {"workers": 3}
    assert problems_of(text) == [
        "wf.yaml:2:7: kind: unsupported kind 'TestWorkflowExecution' (supported kinds: TestWorkflow, "
        "TestWorkflowTemplate)"
    ]


def test_explicit_step_ids_are_unique_outside_parallel_workers() -> None:
    body = (
        "  setup:\n  - {id: build, shell: a}\n"  # lines 6-7
        "  steps:\n  - id: test\n    steps:\n    - {id: build, shell: b}\n"  # lines 8-11
        "  - parallel:\n      steps:\n      - {id: build, shell: c}\n      - {id: build, shell: d}\n"  # 12-15
        "  after:\n  - {id: test, shell: e}\n"  # lines 16-17
    )
    assert _spec(body) == [
        "wf.yaml:11:12: spec.steps[0].steps[0].id: duplicate step id 'build' (first used on line 7)",
        "wf.yaml:15:14: spec.steps[1].parallel.steps[1].id: duplicate step id 'build' (first used on line 14)",
        "wf.yaml:17:10: spec.after[0].id: duplicate step id 'test' (first used on line 9)",
    ]


def test_dynamic_lists_take_a_list_or_an_expression() -> None:
    assert _spec("  steps:\n  - parallel:\n      matrix: {a: 5}\n      shell: x\n") == [
        "wf.yaml:8:19: spec.steps[0].parallel.matrix.a: expected a list or an expression string "
        "such as 'config.items', got 5"
    ]


def test_both_spellings_of_a_template_name_are_one_template() -> None:
    header = "apiVersion: testworkflows.testkube.io/v1\nkind: TestWorkflowTemplate\n"
    text = f"{header}metadata: {{name: official/k6/v1}}\n---\n{header}metadata: {{name: official--k6--v1}}\n"
    assert [str(p) for p in validate_documents(load_documents(text, "t.yaml"))] == [
        "t.yaml:7:18: metadata.name: duplicate TestWorkflowTemplate 'official--k6--v1' (also defined at t.yaml:3)"
    ]
