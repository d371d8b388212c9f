"""Template application (`use`, `template`, services/parallel `use`, global template) on spec dicts.

A template is first rendered with its own config (the ref's `config` values over the template's
defaults; a required parameter without a value is a ``ResolutionError``), with the workflow's own
`config.*` references isolated so the template cannot capture them, and then merged into the
workflow, the step, the service or the parallel spec it is used by (reference §2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shoal.workflow._errors import Problem, WorkflowError
from shoal.workflow._expressions import Expression, ExpressionError, Machine, compile_expression, is_truthy
from shoal.workflow._expressions._parse import MAX_SOURCE_LENGTH
from shoal.workflow._fields import FieldWalker, Where
from shoal.workflow._merge import (
    merge_container,
    merge_content,
    merge_execution,
    merge_fields,
    merge_job,
    merge_map,
    merge_pod,
)
from shoal.workflow._origins import Locatable, Locator, Origins, Path
from shoal.workflow._resolve import FieldError, compile_cached, substitute, substitute_known

Data = dict[str, Any]

# The workflow's own config references are renamed to this root while a template is rendered.
ISOLATED_ROOT = "shoalworkflowconfig"

# Keys of a ContainerConfig that may appear inline in a service spec or a step's `run`.
CONTAINER_KEYS = (
    "workingDir",
    "image",
    "imagePullPolicy",
    "env",
    "envFrom",
    "command",
    "args",
    "resources",
    "securityContext",
    "volumeMounts",
)
_STEP_CONTROL_KEYS = ("paused", "negative", "optional", "retry", "timeout")
_STEP_OPERATION_KEYS = ("delay", "shell", "run", "execute", "artifacts")


class ResolutionError(WorkflowError):
    """The workflow is valid but cannot be resolved for this run (Testkube fails the execution):
    a missing template, a missing required config value, a volumeMount naming no declared volume."""


def internal_template_name(name: str) -> str:
    return name.replace("/", "--")


@dataclass(slots=True)
class _Template:
    name: str
    data: Data
    doc: Locatable | None


class TemplateSet:
    """Templates by name; `a/b` and `a--b` name the same template."""

    def __init__(self, templates: Mapping[str, Any], origins: Origins) -> None:
        self._items: dict[str, _Template] = {}
        self._origins = origins
        for key, value in templates.items():
            data = getattr(value, "data", value)
            doc = value if hasattr(value, "locate") else None
            name = internal_template_name(str(key))
            if not isinstance(data, dict):
                continue
            self._items[name] = _Template(name, data, doc)

    def get(self, name: str) -> _Template | None:
        return self._items.get(internal_template_name(name))

    def names(self) -> list[str]:
        return sorted(self._items)


class TemplateApplier:
    """Applies every template reference of a spec in place (the spec is the caller's own copy)."""

    def __init__(self, templates: TemplateSet, origins: Origins, locator: Locator) -> None:
        self.templates = templates
        self.origins = origins
        self.locator = locator
        # rendered template specs by (template, ref config): the same reference renders the same way
        self._rendered: dict[tuple[str, str], Data] = {}
        self._seen: set[tuple[str, str]] = set()

    # ---------------------------------------------------------------- spec level

    def apply_spec(self, spec: Data) -> None:
        uses = spec.pop("use", None) or []
        for i in range(len(uses) - 1, -1, -1):
            tpl = self.configured(uses[i], uses, i)
            self._inject_into_spec(spec, tpl)
        self._apply_services(spec)
        for key in ("setup", "steps", "after"):
            steps = spec.get(key)
            if steps:
                for step in steps:
                    if isinstance(step, dict):
                        self.apply_step(step)
                spec[key] = flatten_step_list(steps)

    def _inject_into_spec(self, spec: Data, tpl: Data) -> None:
        _set(spec, "pod", merge_pod(tpl.get("pod"), spec.get("pod")))
        _set(spec, "job", merge_job(tpl.get("job"), spec.get("job")))
        events = [*(tpl.get("events") or []), *(spec.get("events") or [])]
        _set(spec, "events", events or None)
        _set(spec, "execution", merge_execution(tpl.get("execution"), spec.get("execution")))
        _set(spec, "concurrency", merge_fields(tpl.get("concurrency"), spec.get("concurrency")))
        _set(spec, "pvcs", merge_map(tpl.get("pvcs"), spec.get("pvcs")))
        _set(spec, "content", merge_content(tpl.get("content"), spec.get("content")))
        _set(spec, "services", merge_map(tpl.get("services"), spec.get("services")))
        _set(spec, "container", merge_container(tpl.get("container"), spec.get("container")))
        _set(spec, "system", merge_fields(tpl.get("system"), spec.get("system")))
        _set(spec, "timeouts", merge_fields(tpl.get("timeouts"), spec.get("timeouts")))
        _set(spec, "setup", [*(tpl.get("setup") or []), *(spec.get("setup") or [])] or None)
        _set(spec, "steps", [*(tpl.get("steps") or []), *(spec.get("steps") or [])] or None)
        _set(spec, "after", [*(spec.get("after") or []), *(tpl.get("after") or [])] or None)

    def _apply_services(self, holder: Data) -> None:
        services = holder.get("services")
        if not isinstance(services, dict):
            return
        for name, svc in services.items():
            if not isinstance(svc, dict):
                continue
            uses = svc.pop("use", None) or []
            for i in range(len(uses) - 1, -1, -1):
                tpl = self.configured(uses[i], uses, i)
                if tpl.get("setup") or tpl.get("steps") or tpl.get("after"):
                    raise ResolutionError(
                        self.locator.problem(
                            f"template {_ref_name(uses[i])!r} used by service {name!r} has steps, "
                            "which a service cannot run",
                            uses,
                            (i, "name"),
                        )
                    )
                if tpl.get("services"):
                    raise ResolutionError(
                        self.locator.problem(
                            f"template {_ref_name(uses[i])!r} used by service {name!r} declares services "
                            "of its own, which a service cannot start",
                            uses,
                            (i, "name"),
                        )
                    )
                _set(svc, "pod", merge_pod(tpl.get("pod"), svc.get("pod")))
                _set(svc, "content", merge_content(tpl.get("content"), svc.get("content")))
                own = {k: svc[k] for k in CONTAINER_KEYS if k in svc}
                merged = merge_container(tpl.get("container"), own) or {}
                for key in CONTAINER_KEYS:
                    svc.pop(key, None)
                    if key in merged:
                        svc[key] = merged[key]
                _set(svc, "pvcs", merge_map(tpl.get("pvcs"), svc.get("pvcs")))

    # ---------------------------------------------------------------- step level

    def apply_step(self, step: Data) -> None:
        uses = step.pop("use", None) or []
        for i in range(len(uses) - 1, -1, -1):
            tpl = self.configured(uses[i], uses, i)
            _inject_into_step(step, tpl)
        ref = step.pop("template", None)
        if ref is not None:
            tpl = self.configured(ref, step, "template")
            isolate: Data = {}
            _inject_into_step(isolate, tpl)
            if isolate.get("setup") or isolate.get("steps"):
                if not any(k in isolate for k in ("container", "content", "workingDir")):
                    inserted = [*(isolate.get("setup") or []), *(isolate.get("steps") or [])]
                else:
                    inserted = [isolate]
                step["steps"] = [*inserted, *(step.get("steps") or [])]
        self._apply_services(step)
        parallel = step.get("parallel")
        if isinstance(parallel, dict):
            self.apply_parallel(parallel)
        for key in ("setup", "steps"):
            for sub in step.get(key) or []:
                if isinstance(sub, dict):
                    self.apply_step(sub)

    def apply_parallel(self, parallel: Data) -> None:
        ref = parallel.pop("template", None)
        if ref is not None:
            moved: Data = {"template": ref}
            for key in (*_STEP_CONTROL_KEYS, *_STEP_OPERATION_KEYS):
                if key in parallel:
                    moved[key] = parallel.pop(key)
            parallel["steps"] = [moved, *(parallel.get("steps") or [])]
        self.apply_spec(parallel)

    # ---------------------------------------------------------------- one template

    def configured(self, ref: Any, holder: Any, key: Any) -> Data:
        """The template's spec rendered with the ref's config, as a fresh copy."""
        name = _ref_name(ref)
        tpl = self.templates.get(name)
        if tpl is None:
            raise ResolutionError(
                self.locator.problem(
                    f"template {name!r} not found", holder, (key, "name") if isinstance(ref, dict) else (key,)
                )
            )
        ref_config = (ref.get("config") if isinstance(ref, dict) else None) or {}
        cache_key = (tpl.name, json.dumps(ref_config, sort_keys=True, default=str))
        cached = self._rendered.get(cache_key)
        if cached is not None:
            copy: Data = self.origins.copy(cached)
            return copy
        spec_src = tpl.data.get("spec") or {}
        if tpl.doc is not None and self.origins.get(spec_src) is None:
            self.origins.register(spec_src, tpl.doc, ("spec",))
        spec: Data = self.origins.copy(spec_src)
        schema = spec.pop("config", None) or {}
        variables, expressions = self._template_config(name, schema, ref_config, holder, key)
        machine = Machine(variables=variables, expressions=expressions)
        _TemplateRenderer(self.origins, variables, machine, name, self.locator).walk(
            spec, Where(spec, (), "spec")
        )
        if cache_key not in self._seen:
            # first use of this (template, config): the caller may have this rendering itself; most
            # references are used once, and the copy kept for later ones is only made on a second use
            self._seen.add(cache_key)
            return spec
        self._rendered[cache_key] = spec
        fresh: Data = self.origins.copy(spec)
        return fresh

    def _template_config(
        self, name: str, schema: Data, ref_config: Data, holder: Any, key: Any
    ) -> tuple[dict[str, Any], dict[str, Expression]]:
        variables: dict[str, Any] = {}
        expressions: dict[str, Expression] = {}
        for param, raw_schema in schema.items():
            param_schema = raw_schema if isinstance(raw_schema, dict) else {}
            kind = str(param_schema.get("type") or "string")
            if param in ref_config:
                source: Any = ref_config[param]
                where: tuple[Any, ...] = (key, "config", param)
                isolate = True
            elif param_schema.get("default") is not None:
                source = param_schema["default"]
                where = (key, "name")
                isolate = False
            else:
                raise ResolutionError(
                    self.locator.problem(
                        f"template {name!r} requires config {param!r}, which has no default and was not given",
                        holder,
                        (key, "config") if isinstance(ref_config, dict) and ref_config else (key, "name"),
                    )
                )
            try:
                value = cast_template_value(source, kind, isolate)
            except (FieldError, ValueError) as exc:
                raise WorkflowError(
                    self.locator.problem(f"template {name!r} config {param!r}: {exc}", holder, where)
                ) from None
            if isinstance(value, Expression):
                expressions[f"config.{param}"] = value
            else:
                variables[f"config.{param}"] = value
        return variables, expressions


class _TemplateRenderer(FieldWalker):
    """Resolves a template's own `config.*` in every field; unknown `config.*` is a ResolutionError."""

    def __init__(
        self, origins: Origins, variables: dict[str, Any], machine: Machine, name: str, locator: Locator
    ) -> None:
        super().__init__(origins)
        self.variables = variables
        self.machine = machine
        self.name = name
        self.locator = locator

    def _render(self, text: str, template: bool, where: Where) -> Any:
        if template and "{{" not in text:
            return text
        if "config" not in text:
            return text
        if template:
            known = substitute_known(text, self.variables)
            if known is not None:
                return known
        try:
            expr = compile_cached(text, template).resolve(self.machine)
        except (FieldError, ExpressionError) as exc:
            raise WorkflowError(
                self.locator.problem(
                    f"{getattr(exc, 'message', exc)} in template {self.name!r}", where.anchor, where.rel
                )
            ) from None
        for acc in expr.accessors():
            if str(acc).startswith("config."):
                raise ResolutionError(
                    self.locator.problem(
                        f"template {self.name!r} uses {acc!r}, which it does not declare in its config",
                        where.anchor,
                        where.rel,
                    )
                )
        if ISOLATED_ROOT in text or any(str(a).startswith(ISOLATED_ROOT + ".") for a in expr.accessors()):
            expr = _rename_root(expr, ISOLATED_ROOT, "config")
        if template:
            return expr.template()
        if expr.is_static():
            return expr.value()
        return expr.source()

    def template(self, text: str, where: Where) -> Any:
        return self._render(text, True, where)

    def expression(self, value: Any, where: Where) -> Any:
        if not isinstance(value, str):
            return value
        return self._render(value, False, where)


def _rename_root(expr: Expression, old: str, new: str) -> Expression:
    mapping = {
        str(a): compile_expression(new + str(a)[len(old) :])
        for a in expr.accessors()
        if str(a) == old or str(a).startswith(old + ".")
    }
    return substitute(expr, mapping) if mapping else expr


def cast_template_value(source: Any, kind: str, isolate: bool) -> Any:
    """A template parameter: the text is a template (it may use the workflow's config, isolated)."""
    text = (
        source if isinstance(source, str) else json.dumps(source) if not isinstance(source, str) else source
    )
    if isinstance(source, bool):
        text = "true" if source else "false"
    if "{{" not in text and len(text) <= MAX_SOURCE_LENGTH:  # plain text: the template is that text
        return cast_value(text, kind)
    expr = compile_cached(text, True)
    if isolate:
        expr = _rename_root(expr, "config", ISOLATED_ROOT)
    return cast_expression(expr, kind)


def cast_expression(expr: Expression, kind: str) -> Any:
    """Static -> a Python value of the parameter type; otherwise an Expression wrapped in the cast."""
    if expr.is_static():
        return cast_value(expr.value(), kind)
    fn = {"integer": "int", "number": "float", "boolean": "bool"}.get(kind, "string")
    return compile_expression(f"{fn}({expr.source()})")


def cast_value(value: Any, kind: str) -> Any:
    """Cast a config value to its declared type (`number` -> float; Testkube truncates to int)."""
    if kind == "integer":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, (int, float)):
            return int(value)
        text = str(value).strip()
        try:
            return int(text)
        except ValueError:
            try:
                return int(float(text))
            except ValueError:
                raise ValueError(f"expected an integer, got {value!r}") from None
    if kind == "number":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(str(value).strip())
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    if kind == "boolean":
        return is_truthy(value)
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if not isinstance(value, (dict, list)) else json.dumps(value)


def _inject_into_step(step: Data, tpl: Data) -> None:
    _set(step, "content", merge_content(tpl.get("content"), step.get("content")))
    _set(step, "services", merge_map(tpl.get("services"), step.get("services")))
    _set(step, "container", merge_container(tpl.get("container"), step.get("container")))
    if (tpl.get("system") or {}).get("pureByDefault"):
        step["pure"] = True
    if not (tpl.get("setup") or tpl.get("steps") or tpl.get("after")):
        return
    step["setup"] = [*(tpl.get("setup") or []), *(step.get("setup") or [])]
    step["steps"] = [*(tpl.get("steps") or []), *(step.get("steps") or []), *(tpl.get("after") or [])]
    for key in ("setup", "steps"):
        if not step[key]:
            del step[key]


def flatten_step_list(steps: list[Any]) -> list[Any]:
    """Steps holding nothing but `setup`/`steps` are replaced by those sub-steps."""
    out: list[Any] = []
    for step in steps:
        if isinstance(step, dict) and all(
            _is_zero(v) for k, v in step.items() if k not in ("setup", "steps")
        ):
            out.extend(step.get("setup") or [])
            out.extend(step.get("steps") or [])
        else:
            out.append(step)
    return out


def _is_zero(value: Any) -> bool:
    return value is None or value is False or value == "" or value == [] or value == {} or value == 0


def _set(holder: Data, key: str, value: Any) -> None:
    if value is None:
        holder.pop(key, None)
    else:
        holder[key] = value


def _ref_name(ref: Any) -> str:
    if isinstance(ref, dict):
        return str(ref.get("name") or "")
    return str(ref)


def add_global_template(spec: Data, name: str) -> None:
    """Prepend the global template as the first `use` of the spec and of every parallel spec in it."""
    spec["use"] = [{"name": name}, *(spec.get("use") or [])]
    for key in ("setup", "steps", "after"):
        for step in spec.get(key) or []:
            if isinstance(step, dict):
                _add_global_to_step(step, name)


def _add_global_to_step(step: Data, name: str) -> None:
    parallel = step.get("parallel")
    if isinstance(parallel, dict):
        add_global_template(parallel, name)
    for key in ("setup", "steps"):
        for sub in step.get(key) or []:
            if isinstance(sub, dict):
                _add_global_to_step(sub, name)


def problems_of(exc: WorkflowError) -> list[Problem]:
    return list(exc.problems)


__all__ = [
    "CONTAINER_KEYS",
    "ISOLATED_ROOT",
    "Path",
    "ResolutionError",
    "TemplateApplier",
    "TemplateSet",
    "add_global_template",
    "cast_expression",
    "cast_value",
    "flatten_step_list",
    "internal_template_name",
]
