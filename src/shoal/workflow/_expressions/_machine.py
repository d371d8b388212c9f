"""Machines (sources of names and functions) and the resolver (partial evaluation).

Resolution substitutes what the machines know, folds what became constant and keeps the rest
as a (smaller) tree. A dotted name is looked up whole first, then as property access on its
prefix. A machine value may itself be an expression: it is substituted and resolved in turn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shoal.workflow._expressions._ast import (
    FALSE,
    NONE,
    T_BOOL,
    TRUE,
    Accessor,
    Argument,
    Binary,
    Call,
    Expression,
    Literal,
    Property,
    Template,
    Ternary,
    Unary,
    type_of,
)
from shoal.workflow._expressions._errors import ExpressionError
from shoal.workflow._expressions._values import (
    is_truthy,
    number,
    plain,
    to_float,
    to_string,
)

MAX_SUBSTITUTIONS = 64  # nested variable substitutions / eval() / map() before giving up

_MISSING: Any = object()


class Machine:
    """A source of variables and functions for resolution.

    ``variables``: plain values by name; a dotted key such as ``config.x`` is one variable, and a
    key ``config`` holding a dict also answers ``config.x`` through property access.
    ``expressions``: names standing for another expression (text or compiled), resolved in turn.
    ``functions``: called with plain argument values once every argument is known; may return a
    plain value or an ``Expression``; raise ``ExpressionError`` to fail.
    ``fallback``: asked for names the mappings do not hold; returns ``(value, found)``.
    """

    __slots__ = ("_compiled", "_expressions", "_fallback", "_functions", "_variables")

    def __init__(
        self,
        variables: Mapping[str, Any] | None = None,
        functions: Mapping[str, Callable[..., Any]] | None = None,
        expressions: Mapping[str, str | Expression] | None = None,
        fallback: Callable[[str], tuple[Any, bool]] | None = None,
    ) -> None:
        self._variables: Mapping[str, Any] = variables if variables is not None else {}
        self._functions: Mapping[str, Callable[..., Any]] = functions if functions is not None else {}
        self._expressions: Mapping[str, str | Expression] = expressions if expressions is not None else {}
        self._fallback = fallback
        self._compiled: dict[str, Expression] = {}

    def get(self, name: str) -> tuple[bool, Any]:
        """``(found, value)``; the value is plain data or an ``Expression``."""
        value = self._variables.get(name, _MISSING)
        if value is not _MISSING:
            return True, value
        expression = self._expressions.get(name, _MISSING)
        if expression is not _MISSING:
            if isinstance(expression, str):
                compiled = self._compiled.get(name)
                if compiled is None:
                    from shoal.workflow._expressions._parse import compile_expression

                    compiled = self._compiled[name] = compile_expression(expression)
                return True, compiled
            return True, expression
        if self._fallback is not None:
            value, found = self._fallback(name)
            if found:
                return True, value
        return False, None

    def function(self, name: str) -> Callable[..., Any] | None:
        return self._functions.get(name)


class Context:
    """State of one resolution: the machines, the final flag and the substitution depth."""

    __slots__ = ("cache", "compile_time", "depth", "final", "machines")

    def __init__(self, machines: tuple[Machine, ...], final: bool, compile_time: bool = False) -> None:
        self.machines = machines
        self.final = final
        self.compile_time = compile_time
        self.depth = 0
        # Names already looked up in this resolution (machines do not change during one).
        self.cache: dict[str, Expression | None] = {}

    def lookup(self, name: str) -> tuple[bool, Any]:
        for machine in self.machines:
            found, value = machine.get(name)
            if found:
                return True, value
        return False, None

    def function(self, name: str) -> Callable[..., Any] | None:
        for machine in self.machines:
            fn = machine.function(name)
            if fn is not None:
                return fn
        return None


def resolve_expression(node: Expression, machines: tuple[Machine, ...], final: bool) -> Expression:
    try:
        return resolve(node, Context(machines, final))
    except RecursionError:
        raise ExpressionError("expression is nested too deeply to resolve") from None


def resolve_at_compile_time(node: Expression) -> Expression:
    try:
        return resolve(node, Context((), False, compile_time=True))
    except RecursionError:
        raise ExpressionError("expression is nested too deeply to resolve") from None


def resolve(node: Expression, ctx: Context) -> Expression:
    kind = type(node)
    if kind is Literal:
        return node
    return _RESOLVERS[kind](node, ctx)


def substitute(value: Any, ctx: Context, what: str) -> Expression:
    """A machine's answer as a resolved expression."""
    if not isinstance(value, Expression):
        return Literal(plain(value))
    if type(value) is Literal:
        return value
    ctx.depth += 1
    if ctx.depth > MAX_SUBSTITUTIONS:
        raise ExpressionError(f"maximum call stack exceeded while resolving {what}")
    try:
        return resolve(value, ctx)
    finally:
        ctx.depth -= 1


# ---------------------------------------------------------------------------------------------------
# Names


def _resolve_accessor(node: Accessor, ctx: Context) -> Expression:
    name = node.name
    cache = ctx.cache
    if name in cache:
        result = cache[name]
    else:
        result = cache[name] = _lookup(name, ctx)
    if result is not None:
        return result
    if ctx.final:
        raise ExpressionError(f"unknown variable: {name}", unknown=True)
    return node


def _lookup(name: str, ctx: Context) -> Expression | None:
    """The resolved value of a name, or ``None`` when no machine knows it.

    Like Testkube: the whole name in the first machine, then (recursively) the prefix with
    property access on it, then the whole name in the other machines. Written as a loop over
    the prefixes, so that a name with thousands of dots needs no deep recursion.
    """
    machines = ctx.machines
    if not machines:
        return None
    first = machines[0]
    found, value = first.get(name)
    if found:
        return substitute(value, ctx, name)
    if "." not in name:
        return _lookup_rest(name, ctx)
    names = [name]  # the name, then its prefixes, shortest last
    segments: list[str] = []  # segments[i]: last segment of names[i]
    current = name
    while True:
        dot = current.rfind(".")
        if dot <= 0:
            break
        segments.append(current[dot + 1 :])
        current = current[:dot]
        names.append(current)
    level = len(names) - 1
    result: Expression | None = None
    for index in range(1, len(names)):
        found, value = first.get(names[index])
        if found:
            result = substitute(value, ctx, names[index])
            level = index
            break
    else:
        result = _lookup_rest(names[level], ctx)
    for index in range(level - 1, -1, -1):
        if result is not None:
            if type(result) is not Literal:
                result = property_of(result, segments[index])
                continue
            try:
                result = Literal(at(result.value_, segments[index]))
                continue
            except ExpressionError:
                result = None
        result = _lookup_rest(names[index], ctx)
    return result


def _lookup_rest(name: str, ctx: Context) -> Expression | None:
    for machine in ctx.machines[1:]:
        found, value = machine.get(name)
        if found:
            return substitute(value, ctx, name)
    return None


def _resolve_property(node: Property, ctx: Context) -> Expression:
    target = resolve(node.target, ctx)
    if type(target) is Literal:
        try:
            return Literal(at(target.value_, node.name))
        except ExpressionError as exc:
            raise ExpressionError(f"{render_short(node)}: {exc.message}") from None
    if target is node.target:
        return node
    return property_of(target, node.name)


def property_of(target: Expression, name: str) -> Expression:
    """``target.name``; on a plain name that is the dotted name (what its text reads back as)."""
    if isinstance(target, Accessor):
        return Accessor(target.name + "." + name)
    return Property(target, name)


def at(value: Any, key: Any) -> Any:
    """``at(collection, key)``: list index, map key (missing: null) or string character."""
    if isinstance(value, list):
        try:
            index = to_int_strict(key)
        except ExpressionError:
            raise ExpressionError(f"list index must be a number, {to_string(key)!r} given") from None
        if 0 <= index < len(value):
            return value[index]
        raise ExpressionError(f"index out of bounds (length={len(value)}, index={index})")
    if isinstance(value, dict):
        return value.get(key if isinstance(key, str) else to_string(key))
    if isinstance(value, str):
        try:
            index = to_int_strict(key)
        except ExpressionError:
            raise ExpressionError(f"string index must be a number, {to_string(key)!r} given") from None
        if 0 <= index < len(value):
            return value[index]
        raise ExpressionError(f"index out of bounds (length={len(value)}, index={index})")
    raise ExpressionError(f"properties exist only on lists, maps and strings, not on {to_string(value)!r}")


def to_int_strict(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    converted = to_float(value)
    if converted != converted or converted in (float("inf"), float("-inf")):
        raise ExpressionError(f"cannot convert {to_string(value)!r} to an integer")
    return int(converted)


def render_short(node: Expression, limit: int = 200) -> str:
    text = node.source()
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------------
# Operators


def _resolve_unary(node: Unary, ctx: Context) -> Expression:
    operand = resolve(node.operand, ctx)
    if type(operand) is Literal:
        value = operand.value_
        if node.op == "!":
            return FALSE if is_truthy(value) else TRUE
        try:
            return Literal(number(-to_float(value)))
        except ExpressionError as exc:
            raise ExpressionError(f"{render_short(node)}: {exc.message}") from None
    if operand is node.operand:
        return node
    return Unary(node.op, operand)


def _resolve_binary(node: Binary, ctx: Context) -> Expression:
    op = node.op
    left = resolve(node.left, ctx)
    if isinstance(left, Literal) and (op == "&&" or op == "||"):
        truthy = is_truthy(left.value_)
        if (op == "&&") == truthy:
            return resolve(node.right, ctx)
        return left
    right = resolve(node.right, ctx)
    if isinstance(left, Literal) and isinstance(right, Literal):
        try:
            return Literal(_stdlib.operate(op, left.value_, right.value_))
        except ExpressionError as exc:
            raise ExpressionError(
                f"error while performing math: {render_short(node)}: {exc.message}"
            ) from None
    if (
        op == "+"
        and isinstance(left, Literal)
        and isinstance(left.value_, str)
        and isinstance(right, Binary)
        and right.op == "+"
        and isinstance(right.left, Literal)
        and isinstance(right.left.value_, str)
    ):
        # "s" + ("t" + x) is "st" + x: concatenation is associative once its left side is a string.
        return Binary("+", Literal(left.value_ + right.left.value_), right.right)
    if (
        (op == "&&" or op == "||")
        and type(right) is Literal
        and isinstance(right.value_, bool)
        and type_of(left) == T_BOOL
    ):
        # bool(x) && true -> bool(x); bool(x) || true -> true
        if (op == "&&") == right.value_:
            return left
        return right
    if left is node.left and right is node.right:
        return node
    return Binary(op, left, right, node.spelling)


def _resolve_ternary(node: Ternary, ctx: Context) -> Expression:
    condition = resolve(node.condition, ctx)
    if type(condition) is Literal:
        return resolve(node.then if is_truthy(condition.value_) else node.otherwise, ctx)
    then = resolve(node.then, ctx)
    otherwise = resolve(node.otherwise, ctx)
    if condition is node.condition and then is node.then and otherwise is node.otherwise:
        return node
    return Ternary(condition, then, otherwise)


def _resolve_template(node: Template, ctx: Context) -> Expression:
    return concatenate([resolve(part, ctx) for part in node.parts], node)


def as_string_part(node: Expression) -> Expression:
    """An island of a template: a string literal, a string-typed tree, or ``string(...)``."""
    if type(node) is Literal:
        value = node.value_
        return node if isinstance(value, str) else Literal(to_string(value))
    if type_of(node) == "string":
        return node
    return Call("string", (Argument(node),))


def concatenate(parts: list[Expression], original: Template | None = None) -> Expression:
    """Join template parts: adjacent static strings merge; all static gives one literal."""
    merged: list[Expression] = []
    for raw in parts:
        part = as_string_part(raw)
        if type(part) is Literal:
            text = part.value_
            if text == "":
                continue
            if merged and type(merged[-1]) is Literal:
                merged[-1] = Literal(merged[-1].value_ + text)
                continue
        merged.append(part)
    if not merged:
        return Literal("")
    if len(merged) == 1:
        return merged[0]
    if (
        original is not None
        and len(merged) == len(original.parts)
        and all(a is b for a, b in zip(merged, original.parts, strict=True))
    ):
        return original
    return Template(tuple(merged))


# ---------------------------------------------------------------------------------------------------
# Calls


def _resolve_call(node: Call, ctx: Context) -> Expression:
    name = node.name
    if name == "any":
        return _stdlib.call_any(node, ctx)
    args = node.args
    resolved: list[Argument] = []
    changed = False
    all_static = True
    for arg in args:
        expr = resolve(arg.expr, ctx)
        if expr is not arg.expr:
            changed = True
            arg = Argument(expr, arg.spread)
        if type(expr) is not Literal:
            all_static = False
        resolved.append(arg)
    current = Call(name, tuple(resolved)) if changed else node
    function = _stdlib.STDLIB.get(name)
    if function is not None:
        result = function.call(current, resolved, all_static, ctx)
        if result is not None:
            return result
    elif all_static:
        machine_function = ctx.function(name)
        if machine_function is not None:
            values = _stdlib.expand_arguments(resolved)
            try:
                result_value = machine_function(*values)
            except ExpressionError as exc:
                raise ExpressionError(f"error while calling {render_short(current)}: {exc.message}") from None
            return substitute(result_value, ctx, f"{name}()")
    if ctx.final:
        if function is None and ctx.function(name) is None:
            raise ExpressionError(f"unknown function: {name}", unknown=True)
        raise ExpressionError(f"cannot resolve {render_short(current)}")
    return current


_RESOLVERS: dict[type, Callable[[Any, Context], Expression]] = {
    Accessor: _resolve_accessor,
    Property: _resolve_property,
    Unary: _resolve_unary,
    Binary: _resolve_binary,
    Ternary: _resolve_ternary,
    Call: _resolve_call,
    Template: _resolve_template,
}

__all__ = ["NONE", "Context", "Machine", "at", "resolve", "resolve_expression"]

# The standard library builds on the resolver; imported last to close the cycle.
from shoal.workflow._expressions import _stdlib  # noqa: E402
