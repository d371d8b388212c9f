"""The compiler: resolved spec -> stage tree -> Plan (reference §4.1-§4.4, §4.6).

``compile_workflow`` applies templates and config, resolves every expression it can against the
compile-time variables (config, execution context, workflow metadata), builds the stage tree in the
preset operation order, flattens it like Testkube (virtual groups lifted, single-child groups merged
into their child), computes each stage's condition, status chain and group result, and groups the
operations into containers. What is only known at run time stays as expression text.
"""

from __future__ import annotations

import gc
import json
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from shoal.workflow._context import ExecutionContext
from shoal.workflow._errors import Problem, WorkflowError
from shoal.workflow._expressions import Expression, compile_expression, to_string
from shoal.workflow._fields import FieldWalker, Where, is_config_schema
from shoal.workflow._merge import merge_container, merge_pod
from shoal.workflow._origins import Locatable, Locator, Origins
from shoal.workflow._plan import (
    Action,
    ConfigValue,
    Container,
    EnvVar,
    Plan,
    Retry,
    SignatureNode,
    Stage,
    StageKind,
)
from shoal.workflow._resolve import (
    FieldError,
    Scope,
    compile_cached,
    fast_template,
    resolve_template_static,
    resolve_template_with_engine,
)
from shoal.workflow._runtime_names import (
    EXECUTE_ROOTS,
    INSTANCE_ROOTS,
    STATUS_NAMES,
    credential_env_name,
    secret_env_name,
    sensitive_env_name,
)
from shoal.workflow._templates import (
    CONTAINER_KEYS,
    ResolutionError,
    TemplateApplier,
    TemplateSet,
    add_global_template,
    cast_expression,
    cast_value,
)

Data = dict[str, Any]

ROOT_REF = "root"
DEFAULT_IMAGE = (
    "busybox:1.36"  # the image of steps that set none (Testkube: its init image, busybox userland)
)
TOOLKIT_IMAGE = "shoal-toolkit"  # the image of impure toolkit operations (git clone)
DEFAULT_GIT_MOUNT = "/data/repo"
DEFAULT_ENV: tuple[Data, ...] = ({"name": "CI", "value": "1"},)

# Spec keys whose strings must be fully known before the run starts (they shape the pod/job).
_STATIC_KEYS = frozenset(
    {
        "job",
        "pod",
        "pvcs",
        "execution",
        "concurrency",
        "image",
        "imagePullPolicy",
        "resources",
        "securityContext",
        "volumeMounts",
        "envFrom",
        "files",
        "timeout",
        "delay",
        "retry",
    }
)
# Operations the toolkit runs in any container (compatible with everything when grouping).
_WILDCARD_KINDS = frozenset(
    {"delay", "pause", "tarball", "artifacts", "services-start", "services-stop", "execute", "parallel"}
)
_CATEGORY = {
    "shell": "Run shell command",
    "run": "Run",
    "git": "Clone Git repository",
    "tarball": "Fetch tarball",
    "services-start": "Start services",
    "services-stop": "Stop services",
    "parallel": "Run in parallel",
    "execute": "Execute test workflows",
    "artifacts": "Upload artifacts",
    "pause": "Wait for continue",
}


# ==================================================================================== public API


@dataclass(slots=True)
class CompiledWorkflow:
    """The Plan, and the values of sensitive config parameters keyed by the env var that carries them."""

    plan: Plan
    secrets: dict[str, str] = field(default_factory=dict)


def compile_workflow(
    doc_or_data: Any,
    templates: Mapping[str, Any] | None = None,
    config: Mapping[str, str] | None = None,
    context: ExecutionContext | None = None,
    global_template: str | None = None,
    *,
    validate: bool = True,
    extra_variables: Mapping[str, Any] | None = None,
) -> CompiledWorkflow:
    """Compile one TestWorkflow (a ``Document`` or its plain data) into a Plan.

    ``templates`` maps template names (either spelling) to template documents or their data;
    ``config`` holds run-time values (plain strings, never evaluated). Raises ``WorkflowError`` for
    invalid input and ``ResolutionError`` for what Testkube reports as a failed execution.
    ``extra_variables`` are further compile-time variables (the instance variables of a worker).
    """
    with _collector_paused():
        comp = _Compilation(
            doc_or_data, templates or {}, config or {}, context, global_template, validate, extra_variables
        )
        spec = comp.resolve()
        return comp.build(spec)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Compiling allocates tens of thousands of small dicts, lists and nodes that all live until the
    Plan is built: the cyclic collector's passes over them would reclaim nothing and cost about a tenth
    of the compile time (like Mercurial's ``util.nogc``). The previous state is restored."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def resolve_workflow(
    doc_or_data: Any,
    templates: Mapping[str, Any] | None = None,
    config: Mapping[str, str] | None = None,
    context: ExecutionContext | None = None,
    global_template: str | None = None,
    *,
    validate: bool = True,
) -> Data:
    """The workflow after templates and config: a plain TestWorkflow dict (expressions partly resolved)."""
    comp = _Compilation(doc_or_data, templates or {}, config or {}, context, global_template, validate)
    spec = comp.resolve()
    data = comp.data
    out: Data = {k: v for k, v in data.items() if k != "spec"}
    out["spec"] = spec
    result: Data = json.loads(json.dumps(out, default=str))
    return result


# ==================================================================================== compilation


class _NoDocument:
    """Stands for a document when plain data is compiled: paths are known, positions are not."""

    file: str | None = None

    def locate(self, path: Any) -> None:
        return None


@dataclass(slots=True)
class _ConfigResult:
    variables: dict[str, Any] = field(default_factory=dict)
    expressions: dict[str, Expression] = field(default_factory=dict)
    values: dict[str, ConfigValue] = field(default_factory=dict)
    sensitive_env: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)


class _Compilation:
    def __init__(
        self,
        doc_or_data: Any,
        templates: Mapping[str, Any],
        config: Mapping[str, str],
        context: ExecutionContext | None,
        global_template: str | None,
        validate: bool,
        extra_variables: Mapping[str, Any] | None = None,
    ) -> None:
        self.extra = dict(extra_variables or {})
        data = getattr(doc_or_data, "data", doc_or_data)
        if not isinstance(data, dict):
            raise WorkflowError.at("expected a TestWorkflow document (a mapping)")
        self.doc: Locatable = doc_or_data if hasattr(doc_or_data, "locate") else _NoDocument()
        if validate:
            self._validate(doc_or_data, data)
        if data.get("kind") not in (None, "TestWorkflow"):
            raise WorkflowError.at(
                f"expected a TestWorkflow, got {data.get('kind')!r}", "kind", getattr(self.doc, "file", None)
            )
        self.data = data
        self.origins = Origins()
        self.locator = Locator(self.origins, self.doc)
        self.templates = TemplateSet(templates, self.origins)
        self.config_values = dict(config)
        self.context = context or ExecutionContext()
        self.global_template = global_template
        metadata = data.get("metadata") or {}
        self.name = str(metadata.get("name") or "")
        self.labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
        self.problems: list[Problem] = []
        self.resolution_problems: list[Problem] = []
        self.config = _ConfigResult()
        self.tags: dict[str, str] = {}
        self.static = Scope()
        # env vars that `secret()`/`credential()` calls turned into (name -> EnvVar data)
        self.secret_refs: dict[str, Data] = {}

    def _secret(self, name: Any, key: Any, *_computed: Any) -> Expression:
        env = secret_env_name(str(name), str(key))
        self.secret_refs[env] = {
            "name": env,
            "valueFrom": {"secretKeyRef": {"name": str(name), "key": str(key)}},
        }
        return compile_expression(f"env.{env}")

    def _credential(self, name: Any, *_computed: Any) -> Expression:
        env = credential_env_name(str(name))
        self.secret_refs[env] = {"name": env, "valueFrom": {"credentialRef": {"name": str(name)}}}
        return compile_expression(f"env.{env}")

    def _validate(self, doc_or_data: Any, data: Data) -> None:
        from shoal.workflow._validate import validate_document
        from shoal.workflow._yaml import Document

        doc = doc_or_data if isinstance(doc_or_data, Document) else Document(data, "<input>", 0)
        problems = validate_document(doc)
        if problems:
            raise WorkflowError(problems)

    # ---------------------------------------------------------------- templates, config, expressions

    def resolve(self) -> Data:
        spec_src = self.data.get("spec") or {}
        spec: Data = self.origins.copy(spec_src, self.doc, ("spec",))
        if self.global_template:
            add_global_template(spec, self.global_template)
        TemplateApplier(self.templates, self.origins, self.locator).apply_spec(spec)
        self.config = self._config(spec)
        self._tags_and_scope(spec)
        _SpecResolver(self).walk(spec, Where(spec, (), "spec", _State()))
        self._raise_problems()
        return spec

    def _raise_problems(self) -> None:
        if self.resolution_problems:
            raise ResolutionError(self.resolution_problems + self.problems)
        if self.problems:
            raise WorkflowError(self.problems)

    def _config(self, spec: Data) -> _ConfigResult:
        out = _ConfigResult()
        schema = spec.get("config") or {}
        base = Scope(
            variables={
                **self.context.variables(self.name, self.labels, dict(self.context.tags)),
                **self.extra,
            }
        )
        for name, raw in schema.items():
            param = raw if isinstance(raw, dict) else {}
            kind = str(param.get("type") or "string")
            sensitive = bool(param.get("sensitive"))
            key = f"config.{name}"
            value: Any
            if name in self.config_values:
                raw_value = self.config_values[name]
                try:
                    value = cast_value(raw_value, kind)
                except ValueError as exc:
                    self.problems.append(Problem(f"{exc}", f"config.{name}", None))
                    continue
                text = raw_value if isinstance(raw_value, str) else to_string(raw_value)
                from_default = False
            elif param.get("default") is not None:
                default = param["default"]
                source = default if isinstance(default, str) else to_string(default)
                try:
                    expr = compile_cached(source, True).resolve(base.machine())
                    cast = cast_expression(expr, kind)
                except (FieldError, ValueError) as exc:
                    self.problems.append(
                        self.locator.problem(f"{getattr(exc, 'message', exc)}", schema, (name, "default"))
                    )
                    continue
                except Exception as exc:  # the engine's own error type
                    self.problems.append(self.locator.problem(str(exc), schema, (name, "default")))
                    continue
                from_default = True
                if isinstance(cast, Expression):
                    out.expressions[key] = cast
                    out.values[name] = ConfigValue(None if sensitive else cast.template(), sensitive, True)
                    continue
                value = cast
                text = to_string(value)
            else:
                out.missing.add(name)
                continue
            if sensitive:
                env = sensitive_env_name(name)
                out.sensitive_env[env] = name
                out.secrets[env] = text
                fn = {"integer": "int", "number": "float", "boolean": "bool"}.get(kind)
                out.expressions[key] = compile_expression(f"{fn}(env.{env})" if fn else f"env.{env}")
                out.values[name] = ConfigValue(None, True, from_default)
            else:
                out.variables[key] = value
                out.values[name] = ConfigValue(to_string(value), False, from_default)
        return out

    def _tags_and_scope(self, spec: Data) -> None:
        pvcs = spec.get("pvcs") or {}
        root_id = self.context.resource_root or self.context.id
        pvc_vars = {f"pvcs.{name}.name": f"{root_id}-{_dns_part(name)}" for name in pvcs}
        base_vars = {
            **self.context.variables(self.name, self.labels, dict(self.context.tags)),
            **pvc_vars,
            **self.extra,
            **self.config.variables,
            "always": True,
            "never": False,
        }
        base = Scope(variables=base_vars, expressions=dict(self.config.expressions))
        tags: dict[str, str] = {}
        execution = spec.get("execution") or {}
        for key, value in (execution.get("tags") or {}).items():
            text = value if isinstance(value, str) else to_string(value)
            try:
                tags[str(key)] = resolve_template_static(text, base, "an execution tag")
            except FieldError as exc:
                self.problems.append(self.locator.problem(_with_pos(exc), execution, ("tags", key)))
        tags.update(self.context.tags)
        self.tags = tags
        self.static = Scope(
            variables={**base_vars, **self.context.variables(self.name, self.labels, tags)},
            expressions=dict(self.config.expressions),
            functions={"secret": self._secret, "credential": self._credential},
        )

    # ---------------------------------------------------------------- stage tree and Plan

    def build(self, spec: Data) -> CompiledWorkflow:
        builder = _TreeBuilder(self, spec)
        root = builder.build_root()
        if not any(True for _ in _operations(root)):
            raise WorkflowError(self.locator.problem("test workflow has nothing to run", spec, ()))
        self._check_volumes(spec, root)
        if self.problems or self.resolution_problems:
            self._raise_problems()
        plan = _Planner(self, spec, builder).plan(root)
        return CompiledWorkflow(plan=plan, secrets=dict(self.config.secrets))

    def _check_volumes(self, spec: Data, root: _Node) -> None:
        pod = spec.get("pod") or {}
        declared = {str(v.get("name")) for v in pod.get("volumes") or [] if isinstance(v, dict)}
        seen: set[int] = set()
        for op in _operations(root):
            for mount in (op.container or {}).get("volumeMounts") or []:
                if not isinstance(mount, dict) or id(mount) in seen:
                    continue
                seen.add(id(mount))
                name = str(mount.get("name") or "")
                if name not in declared:
                    self.resolution_problems.append(
                        self.locator.problem(
                            f"volumeMount {name!r} at {mount.get('mountPath')!r} names a volume that pod.volumes "
                            "does not declare",
                            mount,
                            ("name",),
                        )
                    )


def _dns_part(name: str) -> str:
    out = "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")
    return out or "pvc"


def _with_pos(exc: FieldError) -> str:
    return exc.message


# ==================================================================================== spec resolution


@dataclass(frozen=True, slots=True)
class _State:
    instance: bool = False  # inside parallel/services/execute: instance variables may stay
    execute: bool = False
    static: str = ""  # non-empty: strings here must be fully known (what they are, for messages)
    own_config: frozenset[str] = frozenset()  # config params declared by a parallel spec itself


class _SpecResolver(FieldWalker):
    """Resolves every field of the spec in place against the compile-time scope."""

    def __init__(self, comp: _Compilation) -> None:
        super().__init__(comp.origins)
        self.comp = comp
        static = comp.static
        status = STATUS_NAMES | {"always", "never"}
        self.main = static
        self.main_condition = static.child(allowed_names=status)
        self.instance = static.child(allowed_roots=INSTANCE_ROOTS, allowed_names=status)
        self.execute = static.child(allowed_roots=INSTANCE_ROOTS | EXECUTE_ROOTS, allowed_names=status)
        self._own_cache: dict[tuple[bool, frozenset[str]], Scope] = {}
        # (id of the scope (kept alive by this resolver), kind, text) -> resolved field
        self._memo: dict[tuple[int, str, str], Any] = {}

    def enter(self, key: str, value: Any, where: Where) -> Any:
        state: _State = where.state
        if key == "parallel" and isinstance(value, dict):
            schema = value.get("config")
            own = frozenset(schema or ()) if is_config_schema(schema) else frozenset()
            return _State(instance=True, own_config=state.own_config | own)
        if key == "services" and isinstance(value, dict):
            return _State(instance=True, execute=state.execute, own_config=state.own_config)
        if key == "execute" and isinstance(value, dict):
            return _State(instance=True, execute=True, own_config=state.own_config)
        if not state.instance and not state.static and key in _STATIC_KEYS:
            return _State(static=key)
        return None

    def _scope(self, state: _State, condition: bool) -> Scope:
        if not state.instance:
            return self.main_condition if condition else self.main
        base = self.execute if state.execute else self.instance
        if not state.own_config:
            return base
        key = (state.execute, state.own_config)
        found = self._own_cache.get(key)
        if found is None:
            found = base.child(allowed_names=[f"config.{n}" for n in state.own_config])
            self._own_cache[key] = found
        return found

    def _problem(self, exc: FieldError, where: Where) -> None:
        name = exc.name or ""
        if name.startswith("config.") and name[7:] in self.comp.config.missing:
            self.comp.resolution_problems.append(
                self.comp.locator.problem(
                    f"config {name[7:]!r} is required (it has no default) but no value was given",
                    where.anchor,
                    where.rel,
                )
            )
            return
        self.comp.problems.append(self.comp.locator.problem(exc.message, where.anchor, where.rel))

    def template(self, text: str, where: Where) -> Any:
        if "{{" not in text:
            return text
        state: _State = where.state
        static = bool(state.static) and not state.instance
        scope = self.main if static else self._scope(state, False)
        if not static:
            fast = fast_template(text, scope)
            if fast is not None:
                return fast
        # the same text resolves the same way in the same scope (only a problem's place differs)
        key = (id(scope), "s" if static else "t", text)
        found = self._memo.get(key, _UNSET)
        if found is not _UNSET:
            return found
        try:
            if static:
                out = resolve_template_static(text, scope, f"{state.static} ({_last(where)})")
            else:
                out = resolve_template_with_engine(text, scope)
        except FieldError as exc:
            self._problem(exc, where)
            return text
        self._memo[key] = out
        return out

    def expression(self, value: Any, where: Where) -> Any:
        if not isinstance(value, str):
            return value
        state: _State = where.state
        scope = self._scope(state, True)
        as_source = where.key in ("condition", "until", "logs")
        key = (id(scope), "c" if as_source else "e", value)
        found = self._memo.get(key, _UNSET)
        if found is not _UNSET:
            return found
        try:
            expr = scope.resolve(compile_cached(value, False), value)
            if expr.is_static():
                result = expr.source() if as_source else expr.value()
            else:
                scope.check_residual(expr, value)
                result = expr.source()
        except FieldError as exc:
            self._problem(exc, where)
            return value
        if type(result) in _SCALARS:  # lists and maps are handed out as fresh copies every time
            self._memo[key] = result
        return result

    list_keys = frozenset({"command", "args"})

    def template_list(self, items: list[Any], where: Where) -> list[Any]:
        """argv items: a pure `{{ expr }}` item whose value is a list becomes several items."""
        out: list[Any] = []
        state: _State = where.state
        scope = self._scope(state, False)
        for i, item in enumerate(items):
            sub = where.down(i, self.origins, item)
            if not isinstance(item, str) or "{{" not in item:
                out.append(item)
                continue
            inner = _pure_island(item)
            if inner is not None:
                try:
                    expr = scope.resolve(compile_cached(inner, False), inner)
                except FieldError as exc:
                    self._problem(exc, sub)
                    out.append(item)
                    continue
                if expr.is_static() and isinstance(expr.value(), list):
                    out.extend(to_string(v) for v in expr.value())
                    continue
            out.append(self.template(item, sub))
        return out


_UNSET: Any = object()


def _last(where: Where) -> str:
    return str(where.key) if where.key is not None else "value"


def _pure_island(text: str) -> str | None:
    stripped = text.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")):
        return None
    inner = stripped[2:-2]
    if "{{" in inner or "}}" in inner:
        return None
    return inner


# ==================================================================================== stage tree


@dataclass(eq=False, slots=True)
class _Node:
    ref: str
    kind: StageKind
    name: str = ""
    id: str | None = None
    category: str = ""
    condition: str = ""  # raw, unexpanded; "" = inherit the parent's
    optional: bool = False
    negative: bool = False
    paused: bool = False
    pure: bool | None = None  # groups: None = inherit; operations: True/False
    toolkit: bool = False
    timeout: str = ""
    retry: Data | None = None
    virtual: bool = False  # the setup/steps wrapper groups that always dissolve
    children: list[_Node] = field(default_factory=list)
    container: Data | None = None  # operations: the merged ContainerConfig
    wildcard: bool = False  # runs anywhere (pure toolkit op): compatible with any container
    shell: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    spec: Data = field(default_factory=dict)
    anchor: Any = None  # the step dict it came from (for positions)
    absorbed: list[str] | None = None  # refs of single-child groups merged into this stage

    def append_conditions(self, *exprs: str) -> None:
        self.condition = _conjunction((*exprs, self.condition))

    def has_pause(self) -> bool:
        return self.paused or (bool(self.children) and self.children[0].has_pause())

    def add(self, child: _Node | None) -> None:
        if child is not None:
            self.children.extend(_flatten(child))


@lru_cache(maxsize=8192)
def _conjunction(exprs: tuple[str, ...]) -> str:
    """The non-empty, distinct conditions joined with `&&` (each parenthesized when needed)."""
    parts: list[str] = []
    for expr in exprs:
        if expr and expr not in parts:
            parts.append(expr)
    # `x && true` has the truthiness of `x`: keep the conjunction short
    if len(parts) > 1:
        parts = [p for p in parts if p not in ("true", "always")] or ["true"]
    return "&&".join(_parenthesize(p) if len(parts) > 1 else p for p in parts)


def _parenthesize(expr: str) -> str:
    if all(ch.isalnum() or ch in "._" for ch in expr):
        return expr
    if expr.startswith("(") and expr.endswith(")") and _balanced(expr[1:-1]):
        return expr
    if "&&" not in expr and "||" not in expr and "?" not in expr:
        return expr
    return f"({expr})"


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def _flatten(node: _Node) -> list[_Node]:
    """Testkube's group flattening: empty groups vanish, virtual ones dissolve, single children merge up."""
    if node.kind != "group":
        return [node]
    if not node.children:
        return []
    if node.virtual:
        if node.condition:
            for ch in node.children:
                ch.append_conditions(node.condition)
        return node.children
    first = node.children[0]
    if (
        len(node.children) == 1
        and (not node.name or not first.name)
        and (not node.timeout or not first.timeout)
        and (not node.paused or not first.paused)
    ):
        if not first.name:
            first.name = node.name
        if not first.id:
            first.id = node.id
        if not first.condition:
            first.append_conditions(node.condition, "passed")
        else:
            first.append_conditions(node.condition)
        if not first.timeout:
            first.timeout = node.timeout
        if node.negative:
            first.negative = not first.negative
        if node.optional:
            first.optional = True
        if node.paused:
            first.paused = True
        if node.pure is not None:
            if first.kind != "group" and node.pure:
                first.pure = True
            elif first.kind == "group" and first.pure is None:
                first.pure = node.pure
        first.absorbed = [*(first.absorbed or ()), node.ref, *(node.absorbed or ())]
        if first.anchor is None:
            first.anchor = node.anchor
        return [first]
    return [node]


def _operations(node: _Node) -> Any:
    if node.kind == "group":
        for ch in node.children:
            yield from _operations(ch)
    else:
        yield node


class _TreeBuilder:
    """Turns resolved steps into the stage tree, in the preset operation order (§4.1)."""

    def __init__(self, comp: _Compilation, spec: Data) -> None:
        self.comp = comp
        self.spec = spec
        self.refs: set[str] = {ROOT_REF}
        self.files: list[Data] = []
        self.ids: set[str] = set()
        self.pod = spec.get("pod") or {}
        self._ref_seed = zlib.crc32(f"{comp.name}\x00".encode())
        # the operations of a step in the preset order (§4.1), each keyed by the field that enables it
        self._operations: tuple[tuple[str, Any], ...] = (
            ("delay", self._delay),
            ("content", self._git),
            ("content", self._tarball),
            ("services", self._services_start),
            ("setup", lambda step, container, path: self._nested(step, "setup", container, path)),
            ("run", self._run),
            ("shell", self._shell),
            ("execute", self._execute),
            ("parallel", self._parallel),
            ("steps", lambda step, container, path: self._nested(step, "steps", container, path)),
            ("services", self._services_stop),
            ("artifacts", self._artifacts),
        )

    def ref(self, path: str) -> str:
        # CRC of "<workflow name>\0<path>\0<salt>", continued from the name's CRC
        seed = self._ref_seed
        refs = self.refs
        pairs = _PAIRS36
        salt = 0
        while True:
            # "r" + six base-36 digits (as _base36, inlined: this runs for every stage)
            high, rest = divmod(zlib.crc32(f"{path}\x00{salt}".encode(), seed) % _BASE36_6, 1296 * 1296)
            mid, low = divmod(rest, 1296)
            ref = "r" + pairs[high] + pairs[mid] + pairs[low]
            if ref not in refs:
                refs.add(ref)
                return ref
            salt += 1

    def build_root(self) -> _Node:
        spec = self.spec
        steps = [*(spec.get("setup") or []), *(spec.get("steps") or []), *(spec.get("after") or [])]
        self._assign_ids(steps)
        root_step: Data = {"steps": steps}
        for key in ("content", "services", "container"):
            if spec.get(key) is not None:
                root_step[key] = spec[key]
        env = [dict(e) for e in DEFAULT_ENV] + [dict(e) for e in self.comp.secret_refs.values()]
        defaults: Data = {"image": DEFAULT_IMAGE, "env": env}
        return self.process(root_step, defaults, "", ROOT_REF, anchor=spec)

    def _assign_ids(self, steps: list[Any]) -> None:
        explicit: set[str] = set()

        def collect(items: list[Any]) -> None:
            for step in items:
                if not isinstance(step, dict):
                    continue
                if step.get("id"):
                    sid = str(step["id"])
                    if sid in explicit:
                        self.comp.problems.append(
                            self.comp.locator.problem(f"duplicate step id {sid!r}", step, ("id",))
                        )
                    explicit.add(sid)
                for key in ("setup", "steps"):
                    sub = step.get(key)
                    if sub:
                        collect(sub)

        collect(steps)
        seen = set(explicit)

        def derive(items: list[Any]) -> None:
            for step in items:
                if not isinstance(step, dict):
                    continue
                if not step.get("id") and step.get("name"):
                    base = derive_step_id(str(step["name"]))
                    if base:
                        candidate, n = base, 1
                        while candidate in seen:
                            candidate = f"{base}_{n}"
                            n += 1
                        seen.add(candidate)
                        step["id"] = candidate
                for key in ("setup", "steps"):
                    sub = step.get(key)
                    if sub:
                        derive(sub)

        derive(steps)

    # -- one step ---------------------------------------------------------------------------------

    def process(
        self, step: Data, container: Data, path: str, ref: str | None = None, anchor: Any = None
    ) -> _Node:
        get = step.get
        working_dir = get("workingDir")
        if working_dir is not None:
            container = merge_container(container, {"workingDir": working_dir}) or container
        own = get("container")
        if own is not None:
            container = merge_container(container, own) or container
        pure = get("pure")
        custom = get("condition")
        custom_text = "" if custom is None or custom == "" else _condition_text(custom)
        group = _Node(
            ref=ref or self.ref(path),
            kind="group",
            name=str(get("name") or ""),
            id=get("id") or None,
            condition="true" if custom_text else "passed",
            optional=bool(get("optional")),
            negative=bool(get("negative")),
            paused=bool(get("paused")),
            pure=pure if isinstance(pure, bool) else None,
            timeout=str(get("timeout") or ""),
            anchor=anchor if anchor is not None else step,
        )

        if "content" in step:
            self._files(step, group.ref)
        for key, build in self._operations:
            if key in step:
                op = build(step, container, path)
                if op is not None:
                    if custom_text:
                        op.append_conditions(custom_text)
                    group.add(op)
        if not group.children and group.has_pause():
            pause = self._op("pause", path + "/pause", container, step)
            pause.pure = True
            pause.wildcard = True
            pause.command = ["sh", "-c", "exit 0"]
            group.add(pause)
        return group

    def _op(self, kind: StageKind, path: str, container: Data, step: Data) -> _Node:
        return _Node(
            ref=self.ref(path),
            kind=kind,
            category=_CATEGORY.get(kind, ""),
            container=container,
            anchor=step,
            pure=False,
        )

    def _retry(self, step: Data) -> Data | None:
        retry = step.get("retry")
        return retry if isinstance(retry, dict) and retry.get("count") else None

    def _delay(self, step: Data, container: Data, path: str) -> _Node | None:
        delay = step.get("delay")
        if not delay:
            return None
        try:
            from shoal.workflow._durations import format_seconds, parse_duration_ms

            ms = parse_duration_ms(str(delay))
        except ValueError as exc:
            self.comp.problems.append(self.comp.locator.problem(str(exc), step, ("delay",)))
            return None
        node = self._op("delay", path + "/delay", container, step)
        node.category = f"Delay: {delay}"
        node.pure = True
        node.wildcard = True
        node.command = ["sleep", format_seconds(ms)]
        node.spec = {"duration": str(delay), "ms": ms}
        return node

    def _files(self, step: Data, ref: str) -> None:
        content = step.get("content") or {}
        for i, item in enumerate(content.get("files") or []):
            if not isinstance(item, dict):
                continue
            entry: Data = {"ref": ref, "path": item.get("path")}
            if item.get("contentFrom") is not None:
                entry["contentFrom"] = item["contentFrom"]
            else:
                entry["content"] = item.get("content") or ""
            if item.get("mode") is not None:
                entry["mode"] = item["mode"]
            self.files.append(entry)
            del i

    def _git(self, step: Data, container: Data, path: str) -> _Node | None:
        git = (step.get("content") or {}).get("git")
        if not isinstance(git, dict):
            return None
        spec = dict(git)
        spec["mountPath"] = git.get("mountPath") or DEFAULT_GIT_MOUNT
        own = merge_container(container, {"image": TOOLKIT_IMAGE, "workingDir": "/"}) or container
        node = self._op("git", path + "/git", own, step)
        node.toolkit = True
        node.retry = self._retry(step)
        node.spec = spec
        return node

    def _tarball(self, step: Data, container: Data, path: str) -> _Node | None:
        tarball = (step.get("content") or {}).get("tarball")
        if not tarball:
            return None
        node = self._op("tarball", path + "/tarball", container, step)
        node.toolkit = True
        node.pure = True
        node.wildcard = True
        node.retry = self._retry(step)
        node.spec = {"tarball": tarball}
        return node

    def _services_start(self, step: Data, container: Data, path: str) -> _Node | None:
        services = step.get("services")
        if not services:
            return None
        node = self._op("services-start", path + "/services-start", container, step)
        node.toolkit = True
        node.pure = True
        node.wildcard = True
        pod_secrets = self.pod.get("imagePullSecrets") or []
        out: Data = {}
        for name, svc in services.items():
            svc = dict(svc) if isinstance(svc, dict) else {}
            if pod_secrets:
                svc_pod = dict(svc.get("pod") or {})
                svc_pod["imagePullSecrets"] = [*(svc_pod.get("imagePullSecrets") or []), *pod_secrets]
                svc["pod"] = svc_pod
            out[name] = svc
        node.spec = {"services": out}
        return node

    def _services_stop(self, step: Data, container: Data, path: str) -> _Node | None:
        services = step.get("services")
        if not services:
            return None
        node = self._op("services-stop", path + "/services-stop", container, step)
        node.toolkit = True
        node.pure = True
        node.wildcard = True
        node.condition = "always"
        logs = {
            name: svc.get("logs")
            for name, svc in services.items()
            if isinstance(svc, dict) and svc.get("logs") is not None
        }
        node.spec = {"services": list(services), "logs": logs}
        return node

    def _nested(self, step: Data, key: str, container: Data, path: str) -> _Node | None:
        items = step.get(key) or []
        if not items:
            return None
        group = _Node(ref=self.ref(f"{path}/{key}"), kind="group", virtual=True, anchor=step)
        prefix = f"{path}/{key}" if path else ""
        for i, sub in enumerate(items):
            if isinstance(sub, dict):
                group.add(self.process(sub, container, f"{prefix}/{i}" if prefix else str(i)))
        return group

    def _run(self, step: Data, container: Data, path: str) -> _Node | None:
        run = step.get("run")
        if not isinstance(run, dict):
            return None
        own = merge_container(container, {k: run[k] for k in CONTAINER_KEYS if k in run}) or container
        shell = run.get("shell")
        if shell is not None and (run.get("command") is not None or run.get("args") is not None):
            self.comp.problems.append(
                self.comp.locator.problem(
                    "run.shell cannot be combined with run.command or run.args", step, ("run", "shell")
                )
            )
        node = self._op("shell" if shell is not None else "run", path + "/run", own, step)
        node.category = "Run shell command" if shell is not None else "Run"
        node.retry = self._retry(step)
        if shell is not None:
            node.shell = str(shell)
        else:
            node.command = own.get("command")
            node.args = own.get("args")
        return node

    def _shell(self, step: Data, container: Data, path: str) -> _Node | None:
        shell = step.get("shell")
        if shell is None or shell == "":
            return None
        node = self._op("shell", path + "/shell", container, step)
        node.retry = self._retry(step)
        node.shell = str(shell)
        return node

    def _execute(self, step: Data, container: Data, path: str) -> _Node | None:
        execute = step.get("execute")
        if not isinstance(execute, dict):
            return None
        workflows, tests = execute.get("workflows") or [], execute.get("tests") or []
        if not workflows and not tests:
            self.comp.problems.append(
                self.comp.locator.problem(
                    "no test workflows and tests provided to the 'execute' step", step, ("execute",)
                )
            )
            return None
        node = self._op("execute", path + "/execute", container, step)
        node.category = "Execute " + " & ".join(
            [t for t, present in (("test workflows", workflows), ("tests", tests)) if present]
        )
        node.toolkit = True
        node.pure = True
        node.wildcard = True
        node.retry = self._retry(step)
        node.spec = dict(execute)
        return node

    def _parallel(self, step: Data, container: Data, path: str) -> _Node | None:
        parallel = step.get("parallel")
        if not isinstance(parallel, dict):
            return None
        node = self._op("parallel", path + "/parallel", container, step)
        node.toolkit = True
        node.pure = True
        node.wildcard = True
        inherited = {k: v for k, v in container.items() if k != "volumeMounts"}
        worker = dict(parallel)
        merged = merge_container(inherited, parallel.get("container"))
        if merged:
            worker["container"] = merged
        pod = merge_pod(dict(self.pod) if self.pod else None, parallel.get("pod"))
        if pod:
            worker["pod"] = pod
        node.spec = {"parallel": worker}
        return node

    def _artifacts(self, step: Data, container: Data, path: str) -> _Node | None:
        artifacts = step.get("artifacts")
        if not isinstance(artifacts, dict):
            return None
        if not artifacts.get("paths"):
            self.comp.problems.append(
                self.comp.locator.problem(
                    "there needs to be at least one path to scrap for artifacts", step, ("artifacts",)
                )
            )
            return None
        own = container
        if artifacts.get("workingDir"):
            own = merge_container(container, {"workingDir": artifacts["workingDir"]}) or container
        node = self._op("artifacts", path + "/artifacts", own, step)
        node.toolkit = True
        node.pure = True
        node.wildcard = True
        node.condition = "always"
        node.retry = self._retry(step)
        node.spec = dict(artifacts)
        return node


def _condition_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def derive_step_id(name: str) -> str:
    """`Run k6 tests!` -> `run_k6_tests` (empty when nothing usable is left)."""
    result = _NON_ALNUM.sub("_", name.lower()).strip("_")
    if not result or not result.isascii():
        return ""
    return result


_NON_ALNUM = re.compile(r"[\W_]+")


_BASE36_6 = 36**6
_DIGITS36 = "0123456789abcdefghijklmnopqrstuvwxyz"


_PAIRS36 = [a + b for a in _DIGITS36 for b in _DIGITS36]


def _base36(value: int) -> str:
    """Six base-36 digits."""
    high, rest = divmod(value, 1296 * 1296)
    mid, low = divmod(rest, 1296)
    return _PAIRS36[high % 1296] + _PAIRS36[mid] + _PAIRS36[low]


# ==================================================================================== Plan


class _Planner:
    """Conditions, chains, results, signature and containers of a built stage tree."""

    def __init__(self, comp: _Compilation, spec: Data, builder: _TreeBuilder) -> None:
        self.comp = comp
        self.spec = spec
        self.builder = builder
        self.stages: dict[str, Stage] = {}
        self.actions: list[Action] = []
        self.nodes: dict[str, _Node] = {}
        system = spec.get("system") or {}
        self.pure_by_default = bool(system.get("pureByDefault"))
        self.isolated = bool(system.get("isolatedContainers"))
        self.refs = frozenset(builder.refs)
        # one EnvVar per env entry of the resolved spec, shared by the stages that inherit it
        # (the spec dicts stay alive while compiling, so their ids are stable keys)
        self._env_cache: dict[int, EnvVar] = {}
        # (condition, has a chain) -> the expanded condition with the chain still a placeholder
        self._expanded: dict[tuple[str, bool], str] = {}
        self._durations: dict[str, int] = {}  # timeout text -> ms
        self._untils: dict[str, str] = {}  # retry.until text -> resolved source
        # id(env list) -> (the list, kept alive so the id stays its own; its EnvVars)
        self._env_lists: dict[int, tuple[Any, tuple[EnvVar, ...]]] = {}
        # `passed` & co. stand for a placeholder name, replaced by the (parenthesized) chain afterwards:
        # resolving a long chain through the engine for every stage would be quadratic.
        placeholder = compile_expression(_CHAIN_PLACEHOLDER)
        self.chain_scope = comp.static.child(
            expressions={
                "passed": placeholder,
                "success": placeholder,
                "failed": compile_expression(f"!{_CHAIN_PLACEHOLDER}"),
                "error": compile_expression(f"!{_CHAIN_PLACEHOLDER}"),
                "status": compile_expression(f'{_CHAIN_PLACEHOLDER} ? "passed" : "failed"'),
            },
            allowed_names={_CHAIN_PLACEHOLDER},
        )
        true = compile_expression("true")
        self.static_status_scope = comp.static.child(
            expressions={
                "passed": true,
                "success": true,
                "failed": compile_expression("false"),
                "error": compile_expression("false"),
                "status": compile_expression('"passed"'),
            }
        )
        self.until_scope = comp.static.child(allowed_names=STATUS_NAMES | {"always", "never"})

    def plan(self, root: _Node) -> Plan:
        self._process(root, None, "", "true", 0, self.pure_by_default)
        containers = self._containers()
        execution = self.spec.get("execution") or {}
        plan = Plan(
            workflow=self.comp.name,
            root=root.ref,
            stages=self.stages,
            signature=[self._signature(ch) for ch in self._lifted(root.children)],
            containers=containers,
            labels=dict(self.comp.labels),
            config=dict(self.comp.config.values),
            sensitive_env=dict(self.comp.config.sensitive_env),
            job=_plain(self.spec.get("job") or {}),
            pod=_plain(self.spec.get("pod") or {}),
            files=self._files(),
            pvcs=_plain(self.spec.get("pvcs") or {}),
            tags=dict(self.comp.tags),
            target=_plain(execution.get("target")) if execution.get("target") is not None else None,
            concurrency=_plain(self.spec.get("concurrency")) if self.spec.get("concurrency") else None,
            events=_plain(self.spec.get("events") or []),
            silent=bool(execution.get("silent")),
            isolated_containers=self.isolated,
        )
        plan.context = self.comp.context.to_dict()
        return plan

    # -- conditions and actions ---------------------------------------------------------------------

    def _process(
        self,
        node: _Node,
        parent: str | None,
        parent_condition: str,
        chain: str,
        chain_len: int,
        inherited_pure: bool,
    ) -> None:
        """``chain``: the status chain (`r2&&r1`, or `true` when empty) of ``chain_len`` refs."""
        ref = node.ref
        stage = Stage(
            ref=ref,
            kind=node.kind,
            parent=parent,
            id=node.id,
            name=node.name,
            category=node.category,
            condition=self._expand(node.condition or parent_condition or "passed", chain, chain_len, node),
            status_chain=chain,
            optional=node.optional,
            negative=node.negative,
            paused=node.paused,
        )
        if node.timeout:
            stage.timeout_ms = self._timeout(node)
        if node.retry:
            stage.retry = self._retry(node)
        self.stages[ref] = stage
        self.nodes[ref] = node
        actions = self.actions
        actions.append(Action("start", ref))
        if node.kind == "group":
            pure = node.pure if node.pure is not None else inherited_pure
            stage.pure = bool(node.pure)
            stage.virtual = not node.name and not node.optional and not node.negative and ref != ROOT_REF
            refs: list[str] = []
            children = stage.children
            child_chain, child_len = chain, chain_len
            condition = node.condition
            for ch in node.children:
                self._process(ch, ref, condition, child_chain, child_len, pure)
                children.append(ch.ref)
                if not ch.optional:
                    child_chain = ch.ref if not child_len else f"{ch.ref}&&{child_chain}"
                    child_len += 1
                    refs.append(ch.ref)
            if node.negative:
                stage.result = "||".join("!" + r for r in refs) if refs else "false"
            else:
                stage.result = "&&".join(refs) if refs else "true"
        else:
            stage.pure = bool(node.pure) or (not node.toolkit and inherited_pure)
            node.pure = stage.pure
            self._payload(stage, node)
            actions.append(Action("exec", ref))
        actions.append(Action("end", ref))

    def _expand(self, condition: str, chain_src: str, chain_len: int, node: _Node) -> str:
        """The condition over refs: status names replaced by the chain (§4.6), the rest resolved."""
        fast = _FAST_CONDITIONS.get(condition)
        if fast is not None:
            if not chain_len:
                return _FAST_STATIC[condition]
            wrapped = chain_src if chain_len == 1 else f"({chain_src})"
            return fast.replace("(CHAIN)", wrapped).replace("CHAIN", chain_src)
        key = (condition, bool(chain_len))
        source = self._expanded.get(key)
        if source is None:
            scope = self.chain_scope if chain_len else self.static_status_scope
            try:
                expr = scope.resolve(compile_cached(condition, False), condition)
                if expr.is_static():
                    source = "true" if _truthy(expr.value()) else "false"
                else:
                    scope.check_residual(expr, condition)
                    source = expr.source()
            except FieldError as exc:
                self.comp.problems.append(self.comp.locator.problem(exc.message, node.anchor, ("condition",)))
                return condition
            self._expanded[key] = source
        if _CHAIN_PLACEHOLDER in source:
            wrapped = chain_src if chain_len == 1 else f"({chain_src})"
            source = source.replace(_CHAIN_PLACEHOLDER, wrapped)
        return source

    def _timeout(self, node: _Node) -> int | None:
        from shoal.workflow._durations import parse_duration_ms

        found = self._durations.get(node.timeout)
        if found is not None:
            return found
        try:
            ms = self._durations[node.timeout] = parse_duration_ms(node.timeout)
        except ValueError as exc:
            self.comp.problems.append(self.comp.locator.problem(str(exc), node.anchor, ("timeout",)))
            return None
        return ms

    def _retry(self, node: _Node) -> Retry | None:
        retry = node.retry or {}
        try:
            count = int(retry.get("count") or 0)
        except (TypeError, ValueError):
            self.comp.problems.append(
                self.comp.locator.problem(
                    f"expected an integer, got {retry.get('count')!r}", node.anchor, ("retry", "count")
                )
            )
            return None
        if count < 1:
            return None
        until = retry.get("until")
        if until is None or until == "":
            return Retry(count=count)
        text = str(until)
        source = self._untils.get(text)
        if source is not None:
            return Retry(count=count, until=source)
        try:
            expr = self.until_scope.resolve(compile_cached(text, False), text)
            if not expr.is_static():
                self.until_scope.check_residual(expr, text)
            source = self._untils[text] = expr.source()
            return Retry(count=count, until=source)
        except FieldError as exc:
            self.comp.problems.append(self.comp.locator.problem(exc.message, node.anchor, ("retry", "until")))
            return Retry(count=count)

    def _payload(self, stage: Stage, node: _Node) -> None:
        container = node.container or {}
        stage.shell = node.shell
        stage.command = list(node.command) if node.command is not None else None
        stage.args = list(node.args) if node.args is not None else None
        working_dir = container.get("workingDir")
        stage.working_dir = str(working_dir) if working_dir is not None else None
        # container env lists are deduplicated by every merge; only the plain data is copied here.
        # Operations of one step list share their env list: its EnvVars are made once.
        items = container.get("env") or ()
        shared = self._env_lists.get(id(items))
        if shared is None:
            cache = self._env_cache
            env: list[EnvVar] = []
            for item in items:
                if type(item) is dict:
                    var = cache.get(id(item))
                    if var is None:
                        var = cache[id(item)] = _env_var(item)
                    env.append(var)
            shared = self._env_lists[id(items)] = (items, tuple(env))
        stage.env = list(shared[1])
        stage.spec = _plain(node.spec) if node.spec else {}

    def _files(self) -> list[Data]:
        """Content files, each pointing at the stage that mounts it (after single-child groups merged)."""
        owner: dict[str, str] = {}
        for ref, node in self.nodes.items():
            owner[ref] = ref
            for gone in node.absorbed or ():
                owner[gone] = ref
        files = _plain(self.builder.files)
        for entry in files:
            entry["ref"] = owner.get(entry["ref"], ROOT_REF)
        return list(files)

    # -- signature ---------------------------------------------------------------------------------------

    def _lifted(self, children: Sequence[_Node]) -> list[_Node]:
        out: list[_Node] = []
        for ch in children:
            if ch.kind == "group" and not ch.name and not ch.optional and not ch.negative:
                out.extend(self._lifted(ch.children))
            else:
                out.append(ch)
        return out

    def _signature(self, node: _Node) -> SignatureNode:
        return SignatureNode(
            ref=node.ref,
            name=node.name or node.category,
            category=node.category,
            id=node.id,
            optional=node.optional,
            negative=node.negative,
            children=[self._signature(ch) for ch in self._lifted(node.children)]
            if node.kind == "group"
            else [],
        )

    # -- containers ---------------------------------------------------------------------------------------

    def _containers(self) -> list[Container]:
        # cut the action list before each operation's leading `start`s: one chunk per operation
        nodes = self.nodes
        chunks: list[_Chunk] = []
        current: list[Action] = []
        op: _Node | None = None
        for action in self.actions:
            kind = action.op
            if kind == "start" and op is not None:
                chunks.append(_Chunk.of(current, op))
                current, op = [], None
            current.append(action)
            if kind == "exec":
                op = nodes[action.ref]
        if current:
            chunks.append(_Chunk.of(current, op))
        groups: list[_Chunk] = []
        if self.isolated:
            groups = chunks
        else:
            # adjacent chunks merge when one is pure and they are compatible (left to right)
            for chunk in chunks:
                if groups:
                    last = groups[-1]
                    if (last.pure or chunk.pure) and last.compatible(chunk):
                        last.absorb(chunk)
                        continue
                groups.append(chunk)
        containers: list[Container] = []
        stages = self.stages
        # a container of one operation is described by that operation's container config alone;
        # consecutive steps share that dict, so its description is worked out once
        described: dict[int, tuple[str, str | None, str | None, Any, Any, list[Data], list[Data]]] = {}
        for index, group in enumerate(groups):
            ops = group.ops
            for node in ops:
                stages[node.ref].container = index
            key = id(ops[0].container) if len(ops) == 1 and ops[0].container is not None else None
            found = described.get(key) if key is not None else None
            if found is None:
                config = group.config()
                found = (
                    str(config.get("image") or DEFAULT_IMAGE),
                    config.get("imagePullPolicy") or None,
                    group.working_dir(),
                    config.get("resources"),
                    config.get("securityContext"),
                    group.volume_mounts(),
                    group.env_from(),
                )
                if key is not None:
                    described[key] = found
            image, pull_policy, working_dir, resources, security, mounts, env_from = found
            containers.append(
                Container(
                    index=index,
                    name=str(index + 1),
                    image=image,
                    image_pull_policy=pull_policy,
                    working_dir=working_dir,
                    resources=_plain(resources) if resources else {},
                    security_context=_plain(security) if security else {},
                    volume_mounts=_plain(mounts) if mounts else [],
                    env_from=_plain(env_from) if env_from else [],
                    actions=group.actions,
                    pure=group.pure,
                )
            )
        return containers


_COMPAT_KEYS = ("image", "imagePullPolicy", "resources", "securityContext")
_CHAIN_PLACEHOLDER = "shoalstatuschain"
# Conditions whose expansion needs no expression engine ("CHAIN" = the status chain).
_FAST_CONDITIONS = {
    "passed": "CHAIN",
    "success": "CHAIN",
    "true": "true",
    "always": "true",
    "false": "false",
    "never": "false",
    "failed": "!(CHAIN)",
    "error": "!(CHAIN)",
}
_FAST_STATIC = {
    "passed": "true",
    "success": "true",
    "true": "true",
    "always": "true",
    "false": "false",
    "never": "false",
    "failed": "false",
    "error": "false",
}


@dataclass(slots=True)
class _Chunk:
    """Consecutive actions that share one container, with what deciding a merge needs kept at hand."""

    actions: list[Action]
    ops: list[_Node]
    pure: bool
    fixed: list[_Node]  # the operations that are not wildcards: they decide the container's config
    mounts: dict[str, tuple[Any, Any]]  # mountPath -> (name, subPath) over the fixed operations
    clash: bool  # two fixed operations mount different things at one path

    @classmethod
    def of(cls, actions: list[Action], op: _Node | None) -> _Chunk:
        ops = [op] if op is not None else []
        fixed = [op] if op is not None and not op.wildcard else []
        mounts: dict[str, tuple[Any, Any]] = {}
        clash = False
        if fixed and op is not None and op.container:
            for m in op.container.get("volumeMounts") or ():
                value = (m.get("name"), m.get("subPath"))
                if mounts.setdefault(str(m.get("mountPath")), value) != value:
                    clash = True
        return cls(actions, ops, op is None or bool(op.pure), fixed, mounts, clash)

    def config(self) -> Data:
        fixed = self.fixed
        source = fixed[0] if fixed else (self.ops[0] if self.ops else None)
        return (source.container or {}) if source is not None else {}

    def compatible(self, other: _Chunk) -> bool:
        if not self.fixed or not other.fixed:
            return True
        a, b = self.fixed[0].container or {}, other.fixed[0].container or {}
        if a is not b and any(_norm(a.get(k)) != _norm(b.get(k)) for k in _COMPAT_KEYS):
            return False
        if self.clash or other.clash:
            return False
        mine = self.mounts
        for key, value in other.mounts.items():
            found = mine.get(key)
            if found is not None and found != value:
                return False
        return True

    def absorb(self, other: _Chunk) -> None:
        """Take ``other``'s actions (it follows this chunk and is compatible with it)."""
        self.actions.extend(other.actions)
        self.ops.extend(other.ops)
        self.pure = self.pure and other.pure
        self.fixed.extend(other.fixed)
        for key, value in other.mounts.items():
            self.mounts.setdefault(key, value)
        self.clash = self.clash or other.clash

    def working_dir(self) -> str | None:
        for op in self.ops:
            wd = (op.container or {}).get("workingDir")
            if wd is not None:
                return str(wd)
        return None

    def volume_mounts(self) -> list[Data]:
        return _unique(op.container.get("volumeMounts") for op in (self.fixed or self.ops) if op.container)

    def env_from(self) -> list[Data]:
        return _unique(op.container.get("envFrom") for op in self.ops if op.container)


def _unique(lists: Any) -> list[Data]:
    """Distinct items of several lists of plain dicts, in order (copied)."""
    out: list[Data] = []
    seen: set[str] = set()
    for items in lists:
        for item in items or ():
            key = json.dumps(item, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                out.append(_plain(item))
    return out


def _norm(value: Any) -> Any:
    return None if value in (None, {}, "") else value


def _truthy(value: Any) -> bool:
    from shoal.workflow._expressions import is_truthy

    return bool(is_truthy(value))


def _env_var(data: Data) -> EnvVar:
    value_from = data.get("valueFrom")
    value = data.get("value")
    return EnvVar(
        name=str(data.get("name") or ""),
        value=None if value is None else (value if isinstance(value, str) else to_string(value)),
        value_from=_plain(value_from) if value_from is not None else None,
        global_=bool(data.get("global")),
        sensitive=isinstance(value_from, dict)
        and ("secretKeyRef" in value_from or "credentialRef" in value_from),
    )


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    """A JSON-clean copy (tuples -> lists, keys -> str)."""
    kind = type(value)
    if kind is dict:
        return {
            (k if type(k) is str else str(k)): (v if type(v) in _SCALARS else _plain(v))
            for k, v in value.items()
        }
    if kind is list or kind is tuple:
        return [v if type(v) in _SCALARS else _plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


__all__ = [
    "DEFAULT_IMAGE",
    "ROOT_REF",
    "TOOLKIT_IMAGE",
    "CompiledWorkflow",
    "ResolutionError",
    "compile_workflow",
    "derive_step_id",
    "resolve_workflow",
]
