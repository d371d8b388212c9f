"""Every real Testkube workflow and template of the conformance corpus loads and validates as is."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shoal.workflow._spec import TestWorkflow, TestWorkflowTemplate
from shoal.workflow._validate import parse_workflow, validate_documents
from shoal.workflow._yaml import load_file

from .spec_helpers import CORPUS

FILES = sorted((CORPUS / "workflows").glob("*.yaml")) + sorted((CORPUS / "templates").glob("*.yaml"))


def test_the_corpus_is_there() -> None:
    assert len(FILES) >= 29


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_document_validates_without_problems(path: Path) -> None:
    docs = load_file(path)
    assert docs
    assert validate_documents(docs) == []
    for doc in docs:
        model = parse_workflow(doc)
        assert isinstance(model, TestWorkflow if doc.kind == "TestWorkflow" else TestWorkflowTemplate)
        assert model.metadata.name == doc.name


def test_loaded_data_matches_a_plain_yaml_load() -> None:
    # The corpus holds nothing where YAML 1.1 and 1.2 disagree, so PyYAML's safe loader is a reference.
    for path in FILES:
        expected = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert [doc.data for doc in load_file(path)] == expected, path


def test_every_expected_workflow_and_template_is_found() -> None:
    expected = yaml.safe_load((CORPUS / "expected.yaml").read_text())
    docs = [doc for path in FILES for doc in load_file(path)]
    workflows = {doc.name for doc in docs if doc.kind == "TestWorkflow"}
    templates = {doc.name for doc in docs if doc.kind == "TestWorkflowTemplate"}
    assert {entry["name"] for entry in expected["workflows"]} <= workflows
    assert {entry["name"] for entry in expected["templates"]} <= templates


def _without_nulls(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_models_dump_back_to_the_document(path: Path) -> None:
    # Aliases on the way out too: a parsed model can stand in for the document's data.
    for doc in load_file(path):
        assert parse_workflow(doc).model_dump(exclude_none=True) == _without_nulls(doc.data)
