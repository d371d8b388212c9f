"""Documents keep the line and column of every value, across multi-document files."""

from __future__ import annotations

from pathlib import Path

from shoal.workflow._yaml import Document, format_path, load_documents, load_file

TEXT = """\
# leading comment
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: first
  labels: {testkube.io/name: x}
spec:
  steps:
  - name: a
    shell: echo
  -   name: b
      retry:
        count: 3
---
---
# only a comment
---
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflowTemplate
metadata: {name: second}
"""


def _docs() -> list[Document]:
    return load_documents(TEXT, "many.yaml")


def test_empty_documents_are_skipped_but_indices_follow_the_stream() -> None:
    docs = _docs()
    assert [(d.index, d.kind, d.name, d.api_version, d.file) for d in docs] == [
        (0, "TestWorkflow", "first", "testworkflows.testkube.io/v1", "many.yaml"),
        (3, "TestWorkflowTemplate", "second", "testworkflows.testkube.io/v1", "many.yaml"),
    ]


def test_locate_gives_the_value_position() -> None:
    first, second = _docs()
    assert first.locate(()) == (2, 1)
    assert first.locate(("kind",)) == (3, 7)
    assert first.locate(("spec", "steps")) == (9, 3)
    assert first.locate(("spec", "steps", 0)) == (9, 5)
    assert first.locate(("spec", "steps", 0, "shell")) == (10, 12)
    assert first.locate(("spec", "steps", 1, "retry", "count")) == (13, 16)
    assert first.locate(("metadata", "labels", "testkube.io/name")) == (6, 30)
    assert second.locate(("metadata", "name")) == (20, 18)


def test_locate_falls_back_to_the_nearest_existing_ancestor() -> None:
    first, _ = _docs()
    assert first.locate(("spec", "steps", 1, "retry", "until")) == (13, 9)
    assert first.locate(("spec", "steps", 7, "name")) == (9, 3)
    assert first.locate(("spec", "nothing", "here")) == (8, 3)
    assert first.locate(("kind", "deeper")) == (3, 7)


def test_locate_key_gives_the_key_position() -> None:
    first, _ = _docs()
    assert first.locate_key(("spec", "steps", 1, "retry")) == (12, 7)
    assert first.locate_key(("spec", "steps", 1)) == (11, 7)


def test_values_from_aliases_are_located_where_the_alias_is() -> None:
    doc = load_documents("a: &x {b: 1}\nc:\n  - *x\n")[0]
    assert doc.locate(("c", 0)) == (3, 5)
    assert doc.locate(("c", 0, "b")) == (1, 11)


def test_load_file_reads_bytes_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_bytes(b"\xef\xbb\xbfkind: TestWorkflow\nmetadata: {name: caf\xc3\xa9}\n")
    (doc,) = load_file(path)
    assert doc.file == str(path)
    assert doc.name == "café"
    assert doc.locate(("metadata", "name")) == (2, 18)


def test_utf16_with_a_bom_is_decoded() -> None:
    (doc,) = load_documents("kind: TestWorkflow\n".encode("utf-16"))
    assert doc.kind == "TestWorkflow"


def test_format_path() -> None:
    assert format_path(()) == ""
    assert format_path(("spec", "steps", 2, "retry", "count")) == "spec.steps[2].retry.count"
    assert format_path(("spec", "services", "db", "env", 0)) == "spec.services.db.env[0]"
    assert format_path(("metadata", "labels", "testkube.io/name")) == 'metadata.labels["testkube.io/name"]'
    assert format_path(("spec", "config", 'a "b"')) == 'spec.config["a \\"b\\""]'
