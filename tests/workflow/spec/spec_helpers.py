"""Shared helpers for the spec tests: the conformance corpus and a small valid workflow."""

from __future__ import annotations

from pathlib import Path

from shoal.workflow._errors import WorkflowError
from shoal.workflow._validate import validate_document
from shoal.workflow._yaml import load_documents

CORPUS = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "testkube"

VALID = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata:
  name: demo
spec:
  config:
    workers: {type: integer, default: 2}
  container:
    image: busybox:1.36
  steps:
  - name: Build
    shell: echo hi
    retry:
      count: 2
    timeout: 30s
"""


def problems_of(text: str, file: str = "wf.yaml") -> list[str]:
    """Every problem of a one-document text, as ``FILE:LINE:COL: path: message`` lines."""
    try:
        docs = load_documents(text, file)
    except WorkflowError as error:
        return [str(p) for p in error.problems]
    return [str(p) for doc in docs for p in validate_document(doc)]
