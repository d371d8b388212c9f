"""`shoal validate` and `shoal compile`: check workflow files and print the Plan they compile to."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

EXIT_INVALID = 2
EXIT_INTERNAL = 70

_T = TypeVar("_T")


def _print_problems(problems: Any) -> None:
    for problem in problems:
        sys.stderr.write(f"{_line(problem)}\n")


def _line(problem: Any) -> str:
    """`FILE:LINE:COL: <field path>: <what was expected>`."""
    where = problem.file or "<input>"
    if problem.line is not None:
        where += f":{problem.line}:{problem.column if problem.column is not None else 1}"
    if problem.path:
        return f"{where}: {problem.path}: {problem.message}"
    return f"{where}: {problem.message}"


def _guarded(action: Callable[[], _T]) -> _T:
    """Run a command body: input problems -> exit 2 with one line each; anything else -> exit 70."""
    from shoal.workflow import WorkflowError

    try:
        return action()
    except typer.Exit:
        raise
    except WorkflowError as exc:
        _print_problems(exc.problems)
        raise typer.Exit(EXIT_INVALID) from None
    except Exception as exc:
        sys.stderr.write(f"shoal: internal error: {type(exc).__name__}: {exc}\n")
        raise typer.Exit(EXIT_INTERNAL) from None


def _parse_config(items: list[str]) -> dict[str, str]:
    from shoal.workflow import Problem, WorkflowError

    out: dict[str, str] = {}
    problems = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            problems.append(Problem(f"expected --config KEY=VALUE, got {item!r}", "--config"))
            continue
        out[key] = value  # the value is a plain string: never evaluated as an expression
    if problems:
        raise WorkflowError(problems)
    return out


def validate_command(
    files: Annotated[list[Path], typer.Argument(help="Workflow/template files or directories.")],
) -> None:
    """Check TestWorkflow and TestWorkflowTemplate documents; exit 2 with one line per problem."""

    def run() -> None:
        from shoal.workflow import Problem, WorkflowError, validate_document, validate_documents
        from shoal.workflow._bundle import Bundle, _files
        from shoal.workflow._yaml import load_file

        # Every file is loaded on its own, so one unreadable file does not hide the others' problems.
        bundle = Bundle()
        problems: list[Any] = []
        for raw in files:
            if not raw.exists():
                problems.append(Problem(f"no such file or directory: {raw}", file=str(raw)))
                continue
            for file in _files(raw):
                try:
                    docs = load_file(file)
                except WorkflowError as exc:
                    problems.extend(exc.problems)
                    continue
                except OSError as exc:
                    problems.append(Problem(f"cannot read: {exc.strerror or exc}", file=str(file)))
                    continue
                if not docs:
                    problems.append(
                        Problem(
                            "expected a TestWorkflow or TestWorkflowTemplate document, found none",
                            "",
                            str(file),
                            1,
                            1,
                        )
                    )
                bundle.add(docs)
        problems.extend(validate_documents(bundle.documents))
        for doc in bundle.workflows:
            missing = _missing_templates(doc, bundle.templates)
            problems.extend(missing)
            if not missing and not validate_document(doc):
                problems.extend(_compile_problems(doc, bundle.templates))
        if problems:
            raise WorkflowError(sorted(problems, key=lambda p: (p.file or "", p.line or 0, p.column or 0)))
        count = len(bundle.documents)
        typer.echo(f"{count} document{'s' if count != 1 else ''} valid")

    _guarded(run)


def _compile_problems(doc: Any, templates: dict[str, Any]) -> list[Any]:
    """What only compiling finds: expression syntax, unknown variables and functions, bad values.

    Required config parameters get placeholder values of their type, so a workflow is not reported for
    needing run-time input; failures Testkube reports as a failed execution (ResolutionError) are not
    problems of the document either."""
    from shoal.workflow import ResolutionError, WorkflowError, compile_workflow

    placeholders = {"integer": "0", "number": "0", "boolean": "false"}
    config: dict[str, str] = {}
    params = ((doc.data or {}).get("spec") or {}).get("config") or {}
    if isinstance(params, dict):
        for name, schema in params.items():
            if isinstance(schema, dict) and "default" not in schema:
                config[str(name)] = placeholders.get(str(schema.get("type") or "string"), "x")
    try:
        compile_workflow(doc, templates, config, validate=False)
    except ResolutionError:
        return []
    except WorkflowError as exc:
        return list(exc.problems)
    return []


def _missing_templates(doc: Any, templates: dict[str, Any]) -> list[Any]:
    """`use`/`template` references to templates none of the given files define."""
    from shoal.workflow import Problem, format_path, internal_template_name

    problems: list[Any] = []

    def check(ref: Any, path: tuple[str | int, ...]) -> None:
        name = ref.get("name") if isinstance(ref, dict) else None
        if isinstance(name, str) and internal_template_name(name) not in templates:
            line, column = doc.locate((*path, "name"))
            problems.append(
                Problem(
                    f"template {name!r} not found in the given files",
                    format_path((*path, "name")),
                    doc.file,
                    line,
                    column,
                )
            )

    def walk(node: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "use" and isinstance(value, list):
                    for i, ref in enumerate(value):
                        check(ref, (*path, key, i))
                elif key == "template" and isinstance(value, dict):
                    check(value, (*path, key))
                else:
                    walk(value, (*path, key))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, (*path, i))

    walk(doc.data.get("spec") if isinstance(doc.data, dict) else None, ("spec",))
    return problems


def compile_command(
    file: Annotated[Path, typer.Argument(help="A file (or directory) holding the workflow.")],
    name: Annotated[
        str | None, typer.Option("--name", help="The workflow to compile when the file has several.")
    ] = None,
    config: Annotated[
        list[str] | None, typer.Option("--config", help="A config value KEY=VALUE (repeatable).")
    ] = None,
    template_dir: Annotated[
        list[Path] | None, typer.Option("--template-dir", "-t", help="A file or directory of templates (repeatable).")
    ] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="json or yaml.")] = "json",
) -> None:
    """Compile a TestWorkflow into the Plan a run would execute, and print it."""

    def run() -> None:
        from shoal.workflow import (
            ExecutionContext,
            Problem,
            WorkflowError,
            compile_workflow,
            load_bundle,
            validate_documents,
        )

        if output not in ("json", "yaml"):
            raise WorkflowError(Problem(f"expected json or yaml, got {output!r}", "-o"))
        values = _parse_config(list(config or []))
        bundle = load_bundle([file, *(template_dir or [])])
        problems = validate_documents(bundle.documents)
        if problems:
            raise WorkflowError(problems)
        doc = bundle.workflow(name)
        compiled = compile_workflow(doc, bundle.templates, values, ExecutionContext(), validate=False)
        data = compiled.plan.to_dict()
        if output == "yaml":
            import yaml

            typer.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), nl=False)
        else:
            typer.echo(json.dumps(data, indent=2, ensure_ascii=False))

    _guarded(run)


def register(app: typer.Typer) -> None:
    """Add `validate` and `compile` to the `shoal` command."""
    app.command("validate")(validate_command)
    app.command("compile")(compile_command)
