"""``shoal render FILE``: print the Kubernetes objects an execution of the workflow would create
(ConfigMap, Secret, PVCs, Job), without a cluster.

Exit codes: 0 rendered, 1 the workflow cannot be rendered (a resolution error, image metadata that
cannot be read), 2 the input is invalid.
"""

from __future__ import annotations

import base64
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


class RenderOutput(StrEnum):
    yaml = "yaml"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command(
        "render", help="Print the Kubernetes objects (ConfigMap, Secret, Job) an execution of FILE would create."
    )(render_command)


def render_command(
    file: Path = typer.Argument(..., help="A YAML file with the TestWorkflow (and templates)."),
    name: str | None = typer.Option(None, "--name", "-n", help="The workflow to render when FILE holds several."),
    config: list[str] = typer.Option([], "--config", "-c", help="A config value, KEY=VALUE (repeatable)."),
    output: RenderOutput = typer.Option(RenderOutput.yaml, "--output", "-o", help="yaml (documents) or json (a List)."),
    templates: list[Path] = typer.Option(
        [], "--templates", "-t", help="Extra files or directories with TestWorkflowTemplates (repeatable)."
    ),
    namespace: str = typer.Option("default", "--namespace", help="Namespace when the workflow sets no job.namespace."),
    image: str | None = typer.Option(
        None, "--image", help="The shoal image (setup and toolkit containers; default: the Kubernetes runtime's)."
    ),
    agent: str = typer.Option("", "--agent", help="Agent name for the objects' labels."),
    show_secrets: bool = typer.Option(
        False, "--show-secrets", help="Print the Secret's real values (default: each value is replaced)."
    ),
) -> None:
    import yaml

    from shoal.execution import ExecutionError
    from shoal.workflow import ResolutionError, WorkflowError

    try:
        objects = _render(file, name, config, templates, namespace, image, agent)
        if not show_secrets:
            _redact(objects)
    except WorkflowError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        raise typer.Exit(EXIT_INVALID) from None
    except _InvalidInput as exc:
        sys.stderr.write(f"shoal render: {exc}\n")
        raise typer.Exit(EXIT_INVALID) from None
    except ResolutionError as exc:
        message = "; ".join(p.message if not p.path else f"{p.path}: {p.message}" for p in exc.problems)
        sys.stderr.write(f"shoal render: {file}: {message}\n")
        raise typer.Exit(EXIT_FAILED) from None
    except ExecutionError as exc:
        sys.stderr.write(f"shoal render: {file}: {exc}\n")
        raise typer.Exit(EXIT_FAILED) from None
    if output is RenderOutput.json:
        sys.stdout.write(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True))
    raise typer.Exit(EXIT_OK)


class _InvalidInput(Exception):
    pass


REDACTED = base64.b64encode(b"<redacted: shoal render --show-secrets>").decode()


def _redact(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj.get("kind") == "Secret":
            obj["data"] = {key: REDACTED for key in obj.get("data") or {}}


def _render(
    file: Path,
    name: str | None,
    config: list[str],
    templates: list[Path],
    namespace: str,
    image: str | None,
    agent: str,
) -> list[dict[str, Any]]:
    import asyncio

    from shoal.execution import ExecutionJob
    from shoal.execution._kubernetes import (
        DEFAULT_IMAGE,
        KubernetesOptions,
        read_image_metadata,
        render_objects,
    )
    from shoal.kube import ImageInspector
    from shoal.workflow import ExecutionContext, compile_workflow, load_bundle

    values: dict[str, str] = {}
    for item in config:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _InvalidInput(f"--config {item!r}: expected KEY=VALUE")
        values[key] = value
    bundle = load_bundle([file, *templates])
    workflow = load_bundle([file]).workflow(name)
    compiled = compile_workflow(workflow, bundle.templates, config=values, context=ExecutionContext())
    plan = compiled.plan
    job = ExecutionJob(
        execution_id=str(plan.context.get("id")), plan=plan, secrets=dict(compiled.secrets), config=values,
        name=f"{plan.workflow}-1",
    )
    options = KubernetesOptions(namespace=namespace, image=image or DEFAULT_IMAGE, agent=agent)
    images, errors = asyncio.run(read_image_metadata(plan, ImageInspector()))
    return render_objects(job, options, images, errors)
