"""Compile-time resolution of expression and template fields, on top of the expression engine.

A ``Scope`` is what the compiler knows at one point (config, execution context, status expressions)
plus which names may legitimately stay symbolic there (run-time names, instance variables, refs).
Resolving a field substitutes what is known and checks that what is left is something the init
program (or an instance expansion) can evaluate; anything else raises ``FieldError`` with the
position inside the expression.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shoal.workflow._expressions import (
    Accessor,
    Call,
    Expression,
    ExpressionError,
    Literal,
    Machine,
    compile_expression,
    compile_template,
    to_string,
)
from shoal.workflow._expressions._values import escape_template_text
from shoal.workflow._runtime_names import RUNTIME_FUNCTIONS, RUNTIME_ROOTS, root_of


class FieldError(Exception):
    """A field's expression is wrong; ``position`` is 0-based inside the field's text."""

    def __init__(self, message: str, position: int | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.name = name  # the unknown variable, when that is the problem


_EXPR_CACHE: dict[tuple[bool, str], Expression] = {}
_CACHE_LIMIT = 50_000


def compile_cached(text: str, template: bool) -> Expression:
    """Compile (memoised: expressions are immutable, resolution returns new ones)."""
    key = (template, text)
    found = _EXPR_CACHE.get(key)
    if found is not None:
        return found
    try:
        expr = compile_template(text) if template else compile_expression(text)
    except ExpressionError as exc:
        position = getattr(exc, "position", None)
        message = getattr(exc, "message", None) or str(exc)
        kind = "template" if template else "expression"
        raise FieldError(f"{message} in {kind} {text!r}", position) from None
    if len(_EXPR_CACHE) >= _CACHE_LIMIT:
        _EXPR_CACHE.clear()
    _EXPR_CACHE[key] = expr
    return expr


@dataclass(slots=True)
class Scope:
    """Known values at one point of the compilation, and the names allowed to stay symbolic."""

    variables: dict[str, Any] = field(default_factory=dict)
    expressions: dict[str, Expression] = field(default_factory=dict)
    allowed_roots: frozenset[str] = RUNTIME_ROOTS
    allowed_names: frozenset[str] = frozenset()  # exact names (refs, status names)
    allowed_functions: frozenset[str] = RUNTIME_FUNCTIONS
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    _machine: Machine | None = None
    # `{{ name }}` island -> its text in a resolved template (None: needs the engine), see _fast_template
    _islands: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    def machine(self) -> Machine:
        if self._machine is None:
            self._machine = Machine(
                variables=self.variables, expressions=self.expressions, functions=self.functions
            )
        return self._machine

    def child(
        self,
        variables: Mapping[str, Any] | None = None,
        expressions: Mapping[str, Expression] | None = None,
        allowed_roots: Iterable[str] = (),
        allowed_names: Iterable[str] = (),
        allowed_functions: Iterable[str] = (),
    ) -> Scope:
        """A scope that knows more (or allows more) than this one."""
        return Scope(
            variables={**self.variables, **(variables or {})},
            expressions={**self.expressions, **(expressions or {})},
            allowed_roots=self.allowed_roots | frozenset(allowed_roots),
            allowed_names=self.allowed_names | frozenset(allowed_names),
            allowed_functions=self.allowed_functions | frozenset(allowed_functions),
            functions=self.functions,
        )

    def is_allowed(self, name: str) -> bool:
        return name in self.allowed_names or root_of(name) in self.allowed_roots

    def resolve(self, expr: Expression, text: str) -> Expression:
        try:
            return expr.resolve(self.machine())
        except ExpressionError as exc:
            position = getattr(exc, "position", None)
            message = getattr(exc, "message", None) or str(exc)
            raise FieldError(f"{message} in {text!r}", position) from None

    def check_residual(self, expr: Expression, text: str) -> None:
        """Every name and function left in ``expr`` must be one this scope allows to stay."""
        names, functions = names_and_functions(expr)
        for name in names:
            if not self.is_allowed(name):
                pos = _find(text, name)
                raise FieldError(f"unknown variable {name!r}{_at(pos)} in expression {text!r}", pos, name)
        for name in functions:
            if name not in self.allowed_functions:
                pos = _find(text, name + "(")
                raise FieldError(
                    f"function {name!r}{_at(pos)} in expression {text!r} cannot be evaluated at run time: "
                    f"its arguments must be known at compile time",
                    pos,
                )


def names_and_functions(expr: Expression) -> tuple[list[str], list[str]]:
    """Accessor and function names of a tree, in one walk."""
    names: list[str] = []
    functions: list[str] = []
    stack: list[Expression] = [expr]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is Literal:
            continue
        if kind is Accessor:
            names.append(node.name)  # type: ignore[attr-defined]
            continue
        if kind is Call:
            functions.append(node.name)  # type: ignore[attr-defined]
        stack.extend(node.children())
    return names, functions


def _names(value: Any) -> Iterable[str]:
    if isinstance(value, Mapping):
        return [str(k) for k in value]
    return [str(v) for v in value]


def _at(pos: int | None) -> str:
    return "" if pos is None else f" at position {pos}"


def _find(text: str, name: str) -> int | None:
    """Best-effort position of ``name`` as a whole word in the original text."""
    match = re.search(r"(?<![\w.])" + re.escape(name) + (r"(?![\w])" if not name.endswith("(") else ""), text)
    if match:
        return match.start()
    first = name.split(".", 1)[0]
    match = re.search(r"(?<![\w.])" + re.escape(first) + r"(?![\w])", text)
    return match.start() if match else None


_ISLAND = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}")


def fast_template(text: str, scope: Scope) -> str | None:
    """The common case without the engine: islands that are plain names of scalars or run-time names.

    Gives exactly what the engine would (`{{ env.X }}` -> `{{env.X}}`, values escaped); ``None``
    when anything else is in the text, so the engine handles it.
    """
    parts = _ISLAND.split(text)
    # each island holds exactly two `{` and two `}`: any other brace is in the literal text
    braces = len(parts) - 1
    if text.count("{") != braces or text.count("}") != braces:
        return None
    islands = scope._islands
    for i in range(1, len(parts), 2):
        name = parts[i]
        rendered = islands.get(name, _MISSING)
        if rendered is _MISSING:
            rendered = islands[name] = _island(name, scope)
        if rendered is None:
            return None
        parts[i] = rendered
    return "".join(parts)


def _island(name: str, scope: Scope) -> str | None:
    """What the `{{ name }}` island of a template becomes in ``scope`` (None: ask the engine)."""
    value = scope.variables.get(name, _MISSING)
    if value is not _MISSING:
        kind = type(value)
        if kind is str:
            return escape_template_text(value)
        if kind is int or kind is float or kind is bool:
            return to_string(value)
        return None
    if name in scope.expressions or name in ("true", "false", "null") or not scope.is_allowed(name):
        return None
    return "{{" + name + "}}"


_MISSING: Any = object()


def substitute_known(text: str, variables: Mapping[str, Any]) -> str | None:
    """``text`` with each `{{ name }}` island replaced by that variable's scalar value, when that is all
    there is to it: no other kind of island, no brace in the text or the values (nothing to escape).
    ``None`` otherwise (the engine then decides). Gives exactly what resolving the template would."""
    parts = _ISLAND.split(text)
    braces = len(parts) - 1  # two `{` and two `}` per island: any other brace is in the literal text
    if text.count("{") != braces or text.count("}") != braces:
        return None
    for i in range(1, len(parts), 2):
        value = variables.get(parts[i], _MISSING)
        kind = type(value)
        if kind is str:
            if "{" in value:
                return None
            parts[i] = value
        elif kind is int or kind is float or kind is bool:
            parts[i] = to_string(value)
        else:
            return None
    return "".join(parts)


def resolve_template(text: str, scope: Scope) -> str:
    """A template field: known islands substituted, the rest kept as ``{{ }}`` islands."""
    if "{{" not in text:
        return text
    fast = fast_template(text, scope)
    if fast is not None:
        return fast
    return resolve_template_with_engine(text, scope)


def resolve_template_with_engine(text: str, scope: Scope) -> str:
    """``resolve_template`` without its shortcut (for texts the shortcut already declined)."""
    expr = scope.resolve(compile_cached(text, True), text)
    if not expr.is_static():
        scope.check_residual(expr, text)
    return expr.template()


def resolve_template_static(text: str, scope: Scope, what: str = "this field") -> str:
    """A template that must be fully known at compile time (images, pod/job fields, tags...)."""
    if "{{" not in text:
        return text
    expr = scope.resolve(compile_cached(text, True), text)
    if not expr.is_static():
        scope.check_residual(expr, text)
        names = sorted(set(_names(expr.accessors())))
        pos = _find(text, names[0]) if names else None
        raise FieldError(
            f"{what} must be known before the run starts, but {text!r} uses "
            f"{', '.join(repr(n) for n in names) or 'run-time functions'}{_at(pos)}",
            pos,
        )
    return to_string(expr.value())


@dataclass(slots=True)
class Residual:
    """An expression that could not be resolved at compile time (normalized source)."""

    source: str


def resolve_expression(value: Any, scope: Scope) -> Any:
    """An expression field: its value when static, else a ``Residual`` with the normalized source."""
    if not isinstance(value, str):
        return value
    expr = scope.resolve(compile_cached(value, False), value)
    if expr.is_static():
        return expr.value()
    scope.check_residual(expr, value)
    return Residual(expr.source())


def expression_source(value: Any, scope: Scope) -> str:
    """An expression field as normalized source text (static values written as literals)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        return compile_cached(repr_literal(value), False).source()
    expr = scope.resolve(compile_cached(value, False), value)
    if not expr.is_static():
        scope.check_residual(expr, value)
    return expr.source()


def repr_literal(value: Any) -> str:
    import json

    return json.dumps(value)


def accessors_of(text: str, template: bool) -> list[str]:
    """Names a field refers to (used to find references to a template's config)."""
    if template and "{{" not in text:
        return []
    return list(_names(compile_cached(text, template).accessors()))


def substitute(expr: Expression, expressions: Mapping[str, Expression]) -> Expression:
    """Replace names by other expressions (e.g. rename `config.x` to an isolated name)."""
    return expr.resolve(Machine(expressions=dict(expressions)))


def is_template_text(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def names_with_prefix(text: str, template: bool, prefix: str) -> Collection[str]:
    return [n for n in accessors_of(text, template) if n.startswith(prefix)]
