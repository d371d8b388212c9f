"""Shared helpers: compile a workflow into an ExecutionJob, render it, validate manifests strictly."""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate

from shoal.execution import ExecutionJob
from shoal.execution._kubernetes import KubernetesOptions
from shoal.workflow import Bundle, ExecutionContext, compile_workflow, load_bundle

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT.parent / "shared" / "conformance" / "testkube"
VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
TOOLKIT = f"{sys.executable} -m shoal.execution._toolkit"


def stand_in_options(**extra: Any) -> KubernetesOptions:
    """Options for the stand-in: the "shoal image" containers run host tools (busybox, this Python)."""
    return KubernetesOptions(toolkit=TOOLKIT, kill_grace=1, **extra)


def job_from_text(text: str, tmp: Path, config: Mapping[str, str] | None = None, *, name: str | None = None,
                  templates: tuple[Path, ...] = ()) -> ExecutionJob:
    path = tmp / f"workflow-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"  # loads are cached by path
    path.write_text(text)
    return job_from_file(path, config, name=name, templates=templates)


def job_from_file(path: Path, config: Mapping[str, str] | None = None, *, name: str | None = None,
                  templates: tuple[Path, ...] = ()) -> ExecutionJob:
    bundle = _bundle((path, *templates))
    workflow = _bundle((path,)).workflow(name)
    compiled = compile_workflow(workflow, bundle.templates, config=dict(config or {}), context=ExecutionContext())
    plan = compiled.plan
    return ExecutionJob(execution_id=str(plan.context["id"]), plan=plan, secrets=dict(compiled.secrets),
                        config=dict(config or {}), name=f"{plan.workflow}-1")


@functools.cache
def _bundle(paths: tuple[Path, ...]) -> Bundle:
    return load_bundle(list(paths))


# Schema files are parsed once per process (the validator reads the 2 MB definitions file per call).
kubernetes_validate.utils.schema_contents = functools.cache(kubernetes_validate.utils.schema_contents)


@functools.cache
def _validate_cached(text: str, version: str) -> None:
    kubernetes_validate.validate(json.loads(text), version, strict=True)


def validate_strictly(objects: list[dict[str, Any]]) -> None:
    """Every object against the 1.30 schemas and the newest ones kubernetes-validate ships, strict mode."""
    for obj in objects:
        text = json.dumps(obj, sort_keys=True)
        for version in VERSIONS:
            _validate_cached(text, version)
