"""Property: whatever tree is put wherever in a valid workflow, validation answers with problems, never a crash."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from shoal.workflow import _spec
from shoal.workflow._errors import Problem, WorkflowError
from shoal.workflow._validate import parse_workflow, validate_document
from shoal.workflow._yaml import Document, load_documents

BASE = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: base
  labels: {team: a}
spec:
  config:
    workers: {type: integer, default: 2}
  content:
    git: {uri: 'https://example.com/r.git', paths: [a]}
  container:
    image: busybox
    env: [{name: A, value: x}]
    resources: {requests: {cpu: 1}}
  services:
    db: {image: postgres, readinessProbe: {tcpSocket: {port: 5432}}}
  steps:
  - name: one
    shell: echo
    retry: {count: 1}
    run: {image: alpine, args: [x]}
  - parallel:
      count: 2
      matrix: {b: [x, y]}
      steps: [{shell: echo}]
    execute:
      workflows: [{name: other, config: {a: 1}}]
    artifacts: {paths: ['*']}
  after:
  - steps: [{name: nested, shell: ls}]
"""

FIELD_NAMES = sorted(
    {
        info.alias or name
        for model in vars(_spec).values()
        if isinstance(model, type) and issubclass(model, BaseModel)
        for name, info in model.model_fields.items()
    }
)

keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=8))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["{{ config.workers }}", "30s", "Always", "passed", "basic", "string"]),
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=20,
)


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


BASE_DATA = yaml.safe_load(BASE)
PATHS = _paths(BASE_DATA)


def _plant(data: Any, path: tuple[str | int, ...], tree: Any, new_key: str | None) -> Any:
    """A copy of ``data`` with ``tree`` at ``path`` (or under a new key of the mapping there)."""
    if not path:
        if new_key is not None and isinstance(data, dict):
            return {**data, new_key: tree}
        return tree
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {**data, head: _plant(data[head], rest, tree, new_key)}
    assert isinstance(head, int)
    copy = list(data)
    copy[head] = _plant(copy[head], rest, tree, new_key)
    return copy


def _check(problems: list[Problem], source: str | bytes) -> None:
    for problem in problems:
        assert problem.message
        assert problem.file == "random.yaml"
        assert problem.line is not None and problem.line >= 1
        assert problem.column is not None and problem.column >= 1
        for wording in ("Input should", "errors.pydantic.dev", "Value error"):
            # messages quote the offending value, which may happen to hold the very words
            assert wording not in problem.message or wording in str(source)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(PATHS), tree=trees, new_key=st.one_of(st.none(), keys))
def test_planted_trees_validate_or_give_problems(
    path: tuple[str | int, ...], tree: Any, new_key: str | None
) -> None:
    data = _plant(BASE_DATA, path, tree, new_key)
    text = yaml.dump(data, Dumper=yaml.CSafeDumper, allow_unicode=True, sort_keys=False)
    try:
        docs = load_documents(text, "random.yaml")
    except WorkflowError as error:
        _check(error.problems, text)
        return
    for doc in docs:
        problems = validate_document(doc)
        _check(problems, text)
        try:
            parse_workflow(doc)
        except WorkflowError as error:
            assert error.problems == problems
        else:
            assert problems == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees)
def test_documents_built_without_positions_still_validate(tree: Any) -> None:
    # A Document made in code (no positions) must work too: every problem falls back to the top.
    data = _plant(BASE_DATA, ("spec", "steps", 0), tree, None)
    for problem in validate_document(Document(data, "random.yaml", 0)):
        assert (problem.line, problem.column) == (1, 1)
        assert problem.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_text_loads_or_gives_problems(text: str | bytes) -> None:
    try:
        docs = load_documents(text, "random.yaml")
    except WorkflowError as error:
        _check(error.problems, text)
        return
    for doc in docs:
        assert isinstance(doc.data, dict)
        _check(validate_document(doc), text)


def test_base_workflow_is_valid() -> None:
    (doc,) = load_documents(BASE, "random.yaml")
    assert validate_document(doc) == []
