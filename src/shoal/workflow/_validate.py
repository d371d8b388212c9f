"""Validation of loaded documents against the spec models, with problems in plain words.

Every pydantic error becomes one :class:`Problem` per wrong field: the field path as written in the
YAML (``spec.steps[2].retry.count``), the line and column it sits at, and what was expected.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any, Final, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from shoal.workflow._errors import Problem, WorkflowError
from shoal.workflow._spec import (
    DELAY_PATTERN,
    DURATION_PATTERN,
    PULL_POLICY_PATTERN,
    RESTART_POLICY_PATTERN,
    STEP_ID_PATTERN,
    TestWorkflow,
    TestWorkflowTemplate,
)
from shoal.workflow._yaml import Document, describe, format_path

API_VERSION: Final = "testworkflows.testkube.io/v1"
KINDS: Final[dict[str, type[TestWorkflow] | type[TestWorkflowTemplate]]] = {
    "TestWorkflow": TestWorkflow,
    "TestWorkflowTemplate": TestWorkflowTemplate,
}

_NAME_RE: Final = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")
_NAME_MAX: Final = 253

_PATTERN_WORDS: Final = {
    DURATION_PATTERN: "a duration such as 30s, 5m or 1h30m (or a {{ }} expression)",
    DELAY_PATTERN: "a delay such as 500ms, 10s or 1m30s",
    STEP_ID_PATTERN: "an id of lower-case letters, digits and '_' that starts with a letter or digit",
    PULL_POLICY_PATTERN: "Always, IfNotPresent or Never",
    RESTART_POLICY_PATTERN: "Never or OnFailure",
}

_YAML11_BOOLS: Final = frozenset(("y", "yes", "n", "no", "on", "off"))

_TYPE_WORDS: Final = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "float_type": "a number",
    "float_parsing": "a number",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def validate_document(doc: Document) -> list[Problem]:
    """Every problem of one document, sorted by position; ``[]`` when it is a valid workflow or template."""
    problems, _ = _check(doc)
    return problems


def validate_documents(docs: Sequence[Document]) -> list[Problem]:
    """Every problem of several documents, including two resources of one kind with the same name."""
    problems: list[Problem] = []
    seen: dict[tuple[str, str], Document] = {}
    for doc in docs:
        found = validate_document(doc)
        kind, name = doc.kind, doc.name
        if kind in KINDS and name:
            # `official/k6/v1` and `official--k6--v1` are one template
            key = name.replace("/", "--") if kind == "TestWorkflowTemplate" else name
            first = seen.setdefault((kind, key), doc)
            if first is not doc:
                line, column = doc.locate(("metadata", "name"))
                where = f"{first.file}:{first.locate(('metadata', 'name'))[0]}"
                message = f"duplicate {kind} '{name}' (also defined at {where})"
                found = _sorted_list([*found, Problem(message, "metadata.name", doc.file, line, column)])
        problems.extend(found)
    return problems


def parse_workflow(doc: Document) -> TestWorkflow | TestWorkflowTemplate:
    """The validated model of a document; raises :class:`WorkflowError` with every problem otherwise."""
    problems, model = _check(doc)
    if problems or model is None:
        raise WorkflowError(problems)
    return model


def _check(doc: Document) -> tuple[list[Problem], TestWorkflow | TestWorkflowTemplate | None]:
    data = doc.data
    found: dict[tuple[str | int, ...], Problem] = {}

    def add(path: tuple[str | int, ...], message: str, at_key: bool = False) -> None:
        if path in found:
            return
        line, column = doc.locate_key(path) if at_key else doc.locate(path)
        found[path] = Problem(message, format_path(path), doc.file, line, column)

    if not isinstance(data, dict):
        add((), f"expected a mapping with apiVersion, kind, metadata and spec, got {describe(data)}")
        return list(found.values()), None

    api_version = data.get("apiVersion")
    if api_version is None:
        add(("apiVersion",), f"apiVersion is missing (expected {API_VERSION})")
    elif api_version != API_VERSION:
        add(("apiVersion",), f"unsupported apiVersion {describe(api_version)} (expected {API_VERSION})")

    kind = data.get("kind")
    model_type = KINDS.get(kind) if isinstance(kind, str) else None
    if kind is None:
        add(("kind",), f"kind is missing (expected one of: {', '.join(KINDS)})")
        model_type = TestWorkflow
    elif model_type is None:
        add(("kind",), f"unsupported kind {describe(kind)} (supported kinds: {', '.join(KINDS)})")
        return _sorted(found), None

    metadata = data.get("metadata")
    if metadata is None:
        add(("metadata",), "metadata is missing (it needs at least a name)")
    elif isinstance(metadata, dict):
        _check_name(metadata.get("name"), model_type is TestWorkflowTemplate, add)

    model: TestWorkflow | TestWorkflowTemplate | None = None
    try:
        model = model_type.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as error:
        for path, details in _group(data, error.errors(include_url=False, include_context=True)).items():
            if details[0]["type"] == "extra_forbidden":
                add(path, _unknown_field(model_type, path), at_key=True)
            else:
                add(path, _message(path, details))
    for path, first in _duplicate_step_ids(data.get("spec")):
        line = doc.locate(first)[0]
        add(path, f"duplicate step id {describe(_get(data, path))} (first used on line {line})")
    problems = _sorted(found)
    return problems, (None if problems else model)


def _duplicate_step_ids(spec: Any) -> list[tuple[tuple[str | int, ...], tuple[str | int, ...]]]:
    """(path of a repeated explicit step ``id``, path of its first use) pairs.

    Ids share one namespace across setup/steps/after and nested steps; each ``parallel`` starts a
    namespace of its own, as its workers run as separate workflows.
    """
    found: list[tuple[tuple[str | int, ...], tuple[str | int, ...]]] = []
    # Each entry: a mapping holding step lists, its path, the groups to look at, the id namespace.
    pending: list[tuple[Any, tuple[str | int, ...], tuple[str, ...], dict[str, tuple[str | int, ...]]]] = [
        (spec, ("spec",), ("setup", "steps", "after"), {})
    ]
    while pending:
        holder, path, groups, seen = pending.pop()
        if not isinstance(holder, dict):
            continue
        for group in reversed(groups):  # reversed: the stack pops them back in document order
            steps = holder.get(group)
            if not isinstance(steps, list):
                continue
            for index in range(len(steps) - 1, -1, -1):
                step = steps[index]
                if isinstance(step, dict):
                    step_path = (*path, group, index)
                    pending.append((step, step_path, ("setup", "steps"), seen))
                    pending.append(
                        (step.get("parallel"), (*step_path, "parallel"), ("setup", "steps", "after"), {})
                    )
        if groups == ("setup", "steps"):  # holder is a step: claim its id
            step_id = holder.get("id")
            if isinstance(step_id, str) and step_id:
                if step_id in seen:
                    found.append(((*path, "id"), seen[step_id]))
                else:
                    seen[step_id] = (*path, "id")
    return found


def _get(data: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _sorted(found: dict[tuple[str | int, ...], Problem]) -> list[Problem]:
    return _sorted_list(found.values())


def _sorted_list(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0, p.path))


def _check_name(name: Any, is_template: bool, add: Any) -> None:
    if name is None:
        add(("metadata", "name"), "metadata.name is missing")
        return
    if not isinstance(name, str):
        return  # the model says what type it expected
    # Template names may be written with '/' (official/k6/v1); Kubernetes stores them with '--'.
    checked = name.replace("/", "--") if is_template else name
    if len(name) > _NAME_MAX or not _NAME_RE.fullmatch(checked):
        slash = ", '/'" if is_template else ""
        add(
            ("metadata", "name"),
            f"invalid name {describe(name)}: expected lower-case letters, digits, '-', '.'{slash}, "
            f"starting and ending with a letter or digit, at most {_NAME_MAX} characters",
        )


def _group(data: Any, errors: list[ErrorDetails]) -> dict[tuple[str | int, ...], list[ErrorDetails]]:
    """Errors keyed by the data path they are about (union member names dropped from pydantic's loc)."""
    groups: dict[tuple[str | int, ...], list[ErrorDetails]] = {}
    for error in errors:
        path = _data_path(data, error["loc"], error["type"] == "missing")
        groups.setdefault(path, []).append(error)
    # An unknown key speaks for itself; drop the union siblings reported beside it.
    for details in groups.values():
        details.sort(key=lambda d: d["type"] != "extra_forbidden")
    return groups


def _data_path(data: Any, loc: tuple[str | int, ...], missing: bool) -> tuple[str | int, ...]:
    path: list[str | int] = []
    current = data
    last = len(loc) - 1
    for i, part in enumerate(loc):
        in_mapping = isinstance(current, dict) and isinstance(part, str) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_mapping or in_list:
            current = current[part]
            path.append(part)
        elif missing and i == last and isinstance(part, str):
            path.append(part)
        # anything else names a member of a union (``int``, ``str``, ``list[any]``...): not a field
    return tuple(path)


def _message(path: tuple[str | int, ...], details: list[ErrorDetails]) -> str:
    first = details[0]
    if first["type"] == "missing":
        return f"required field '{path[-1]}' is missing" if path else "a required field is missing"
    for detail in details:
        if detail["type"] == "shoal":
            return detail["msg"]
    expected: list[str] = []
    for detail in details:
        words = _expected(detail)
        if words not in expected:
            expected.append(words)
    value = first["input"]
    if expected == ["a list", "a string"]:  # DynamicList: static, or computed by an expression
        expected = ["a list or an expression string such as 'config.items'"]
    message = f"expected {' or '.join(expected)}, got {describe(value)}"
    # Quoting helps where a plain string is wanted, not where a string would be an expression for a list.
    quoting_helps = "a string" in expected and "a list" not in expected
    if quoting_helps and isinstance(value, (int, float)) and not isinstance(value, bool):
        message += " (put it in quotes)"
    elif quoting_helps and isinstance(value, bool):
        message += " (put it in quotes: 'true' and 'false' are booleans in YAML)"
    elif "true or false" in expected and isinstance(value, str) and value.lower() in _YAML11_BOOLS:
        message += " (YAML 1.2 reads yes/no/on/off as strings)"
    return message


def _expected(detail: ErrorDetails) -> str:
    kind = detail["type"]
    context = detail.get("ctx") or {}
    if kind in _TYPE_WORDS:
        return _TYPE_WORDS[kind]
    if kind == "string_pattern_mismatch":
        return _PATTERN_WORDS.get(str(context.get("pattern")), f"a string matching {context.get('pattern')}")
    if kind == "literal_error":
        return f"one of {context.get('expected')}"
    if kind == "greater_than_equal":
        return f"{_number_word(detail)} of at least {context.get('ge')}"
    if kind == "less_than_equal":
        return f"{_number_word(detail)} of at most {context.get('le')}"
    if kind == "greater_than":
        return f"a number above {context.get('gt')}"
    if kind == "less_than":
        return f"a number below {context.get('lt')}"
    text = str(detail["msg"])
    for prefix in ("Input should be ", "Value error, "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text


def _number_word(detail: ErrorDetails) -> str:
    return "an integer" if isinstance(detail["input"], int) else "a number"


def _unknown_field(model_type: type[BaseModel], path: tuple[str | int, ...]) -> str:
    key = str(path[-1])
    shown = key if len(key) <= 60 else key[:57] + "..."
    allowed = _fields_at(model_type, path[:-1])
    if not allowed:
        return f"unknown field '{shown}'"
    close = difflib.get_close_matches(key, allowed, n=3, cutoff=0.6)
    if not close:
        close = [a for a in allowed if a.lower() == key.lower()]
    if close:
        return f"unknown field '{shown}' (did you mean {' or '.join(close)}?)"
    return f"unknown field '{shown}' (expected one of: {', '.join(allowed)})"


def _fields_at(model_type: type[BaseModel], path: tuple[str | int, ...]) -> tuple[str, ...]:
    """The keys allowed at ``path`` of a document of ``model_type``."""
    current: Any = model_type
    for part in path:
        current = _child_type(current, part)
        if current is None:
            return ()
    model = _model_in(current)
    return _aliases(model) if model is not None else ()


def _child_type(annotation: Any, part: str | int) -> Any:
    model = _model_in(annotation)
    if model is not None and isinstance(part, str):
        _complete(model)
        for name, info in model.model_fields.items():
            if (info.alias or name) == part:
                return info.annotation
        return None
    for member in _members(annotation):
        origin = get_origin(member)
        args = get_args(member)
        if origin is list and isinstance(part, int) and args:
            return args[0]
        if origin is dict and isinstance(part, str) and len(args) == 2:
            return args[1]
    return None


def _members(annotation: Any) -> tuple[Any, ...]:
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return tuple(m for a in get_args(annotation) for m in _members(a))
    if hasattr(annotation, "__metadata__"):  # Annotated[...]
        return _members(get_args(annotation)[0])
    return (annotation,)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


@cache
def _aliases(model: type[BaseModel]) -> tuple[str, ...]:
    _complete(model)
    return tuple(sorted(info.alias or name for name, info in model.model_fields.items()))


def _complete(model: type[BaseModel]) -> None:
    """The spec models are built on first use (``defer_build``): one that was only ever validated as a
    part of a document still has the forward references of its field annotations unresolved."""
    model.model_rebuild()
