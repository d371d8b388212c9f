"""The standard functions and the operators of the expression language.

Functions run once all their arguments are known (``any()`` and the casts are the exceptions);
until then a call stays in the tree as it is. ``date()`` is never folded at compile time.
"""

from __future__ import annotations

import json
import math
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jq
import yaml

from shoal.workflow._expressions._ast import (
    NONE,
    T_BOOL,
    T_FLOAT,
    T_INT,
    T_STRING,
    WILDCARD_FUNCTION,
    Argument,
    Call,
    Expression,
    Literal,
    type_of,
)
from shoal.workflow._expressions._errors import ExpressionError
from shoal.workflow._expressions._files import clean_path
from shoal.workflow._expressions._gotime import RFC3339_MILLIS, format_go_time
from shoal.workflow._expressions._machine import (
    Context,
    Machine,
    at,
    render_short,
    resolve,
    substitute,
    to_int_strict,
)
from shoal.workflow._expressions._shell import quote_words, split_words
from shoal.workflow._expressions._values import (
    dump_json,
    is_truthy,
    number,
    plain,
    to_float,
    to_int,
    to_list,
    to_map,
    to_string,
)

MAX_COLLECTION = 1_000_000  # items a range()/chunk() may produce


class _NotReady:
    """Returned by a function that cannot run yet (e.g. it needs the working directory)."""


NOT_READY: Any = _NotReady()

Handler = Callable[[list[Any], Context], Any]


@dataclass(frozen=True, slots=True)
class StdFunction:
    name: str
    handler: Handler
    cast: str = ""  # the function returns its only argument unchanged when it already has this type

    def call(self, node: Call, args: list[Argument], all_static: bool, ctx: Context) -> Expression | None:
        if self.cast and len(args) == 1 and not args[0].spread and type_of(args[0].expr) == self.cast:
            return args[0].expr
        if not all_static:
            return None
        values = expand_arguments(args)
        try:
            result = self.handler(values, ctx)
        except ExpressionError as exc:
            raise ExpressionError(f"error while calling {render_short(node)}: {exc.message}") from None
        except (ValueError, TypeError, OverflowError, yaml.YAMLError) as exc:
            raise ExpressionError(f"error while calling {render_short(node)}: {exc}") from None
        if result is NOT_READY:
            return None
        if isinstance(result, Expression):
            return substitute(result, ctx, f"{self.name}()")
        return Literal(result)


def expand_arguments(args: list[Argument]) -> list[Any]:
    values: list[Any] = []
    for arg in args:
        expr = arg.expr
        assert isinstance(expr, Literal)
        value = expr.value_
        if arg.spread:
            if value is None:
                continue
            if not isinstance(value, list):
                raise ExpressionError(
                    f"spread operator (...) used against non-list parameter: {to_string(value)}"
                )
            values.extend(value)
        else:
            values.append(value)
    return values


def _count(name: str, values: list[Any], low: int, high: int | None = None) -> None:
    high = low if high is None else high
    if not low <= len(values) <= high:
        expected = str(low) if low == high else f"{low}-{high}"
        raise ExpressionError(f'"{name}" function expects {expected} arguments, {len(values)} provided')


# ---------------------------------------------------------------------------------------------------
# Operators


def operate(op: str, left: Any, right: Any) -> Any:
    """The value of ``left op right`` for two plain values."""
    if op == "==":
        return to_string(left) == to_string(right)
    if op == "!=":
        return to_string(left) != to_string(right)
    if op == "&&":
        return right if is_truthy(left) else left
    if op == "||":
        return left if is_truthy(left) else right
    if op == "+" and (isinstance(left, str) or isinstance(right, str)):
        return to_string(left) + to_string(right)
    a = to_float(left)
    b = to_float(right)
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    if op == "+":
        return number(a + b)
    if op == "-":
        return number(a - b)
    if op == "*":
        return number(a * b)
    if op == "/":
        if b == 0:
            raise ExpressionError("cannot divide by zero")
        return number(a / b)
    if op == "%":
        if b == 0:
            raise ExpressionError("cannot modulo by zero")
        return number(math.fmod(a, b))
    if op == "**":
        return number(_power(a, b))
    raise ExpressionError(f"unknown operator {op}")


def _power(base: float, exponent: float) -> float:
    try:
        return math.pow(base, exponent)
    except OverflowError:
        negative = base < 0 and exponent.is_integer() and int(exponent) % 2 == 1
        return -math.inf if negative else math.inf
    except ValueError:
        if base == 0 and exponent < 0:
            return math.inf
        return math.nan


# ---------------------------------------------------------------------------------------------------
# any()


def call_any(node: Call, ctx: Context) -> Expression:
    """The first argument that resolves; unknown names are skipped at the final stage."""
    pending: list[Argument] = []
    for arg in node.args:
        try:
            expr = resolve(arg.expr, ctx)
        except ExpressionError as exc:
            if ctx.final and exc.unknown:
                continue
            raise
        if type(expr) is not Literal:
            pending.append(Argument(expr, arg.spread))
            continue
        value = expr.value_
        if not arg.spread:
            return expr
        if value is None:
            continue
        if not isinstance(value, list):
            raise ExpressionError(
                f"spread operator (...) used against non-list parameter: {to_string(value)}"
            )
        if value:
            return Literal(value[0])
    if not pending:
        return NONE
    return Call("any", tuple(pending))


# ---------------------------------------------------------------------------------------------------
# Functions


def _string(values: list[Any], ctx: Context) -> Any:
    return "".join([to_string(value) for value in values])


def _int(values: list[Any], ctx: Context) -> Any:
    _count("int", values, 1)
    return to_int(values[0])


def _float(values: list[Any], ctx: Context) -> Any:
    _count("float", values, 1)
    return to_float(values[0])


def _bool(values: list[Any], ctx: Context) -> Any:
    _count("bool", values, 1)
    return is_truthy(values[0])


def _list(values: list[Any], ctx: Context) -> Any:
    return list(values)


def _join(values: list[Any], ctx: Context) -> Any:
    _count("join", values, 1, 2)
    if values[0] is None:
        return None
    if not isinstance(values[0], list):
        raise ExpressionError(
            f'"join" function expects a list as 1st argument, {to_string(values[0])!r} provided'
        )
    separator = to_string(values[1]) if len(values) == 2 else ","
    return separator.join([to_string(item) for item in values[0]])


def _split(values: list[Any], ctx: Context) -> Any:
    _count("split", values, 1, 2)
    text = to_string(values[0])
    separator = to_string(values[1]) if len(values) == 2 else ","
    if separator == "":
        return list(text)
    return text.split(separator)


def _trim(values: list[Any], ctx: Context) -> Any:
    _count("trim", values, 1)
    if not isinstance(values[0], str):
        raise ExpressionError('"trim" function argument should be a string')
    return values[0].strip()


def _len(values: list[Any], ctx: Context) -> Any:
    _count("len", values, 1)
    value = values[0]
    if isinstance(value, (list, str, dict)):
        return len(value)
    raise ExpressionError(f'"len" function expects a string, list or map, {to_string(value)!r} provided')


def _rounding(name: str, fn: Callable[[float], float]) -> Handler:
    def handler(values: list[Any], ctx: Context) -> Any:
        _count(name, values, 1)
        result = fn(to_float(values[0]))
        if result != result or result in (math.inf, -math.inf):
            raise ExpressionError(f'"{name}" function cannot round {to_string(values[0])}')
        return int(result)

    return handler


def _round_half_away(value: float) -> float:
    if value != value or value in (math.inf, -math.inf):
        return value
    return math.copysign(math.floor(abs(value) + 0.5), value)


def _at(values: list[Any], ctx: Context) -> Any:
    _count("at", values, 2)
    return at(values[0], values[1])


def _chunk(values: list[Any], ctx: Context) -> Any:
    _count("chunk", values, 2)
    items = to_list(values[0]) or []
    size = to_int(values[1])
    if size <= 0:
        raise ExpressionError(f'"chunk" function expects 2nd argument to be >= 1, {size} provided')
    return [items[start : start + size] for start in range(0, len(items), size)]


def _range(values: list[Any], ctx: Context) -> Any:
    _count("range", values, 1, 2)
    start, end = (0, to_int(values[0])) if len(values) == 1 else (to_int(values[0]), to_int(values[1]))
    if end - start > MAX_COLLECTION:
        raise ExpressionError(f'"range" function would produce more than {MAX_COLLECTION} items')
    return list(range(start, end))


def _items(name: str, value: Any) -> list[tuple[Any, Any]]:
    """``(key, item)`` pairs of a list (key = index) or a map."""
    if value is None:
        return []
    if isinstance(value, list):
        return list(enumerate(value))
    if isinstance(value, dict):
        return list(value.items())
    raise ExpressionError(f'"{name}" function expects a list, {to_string(value)!r} provided')


def _compile_inner(name: str, source: Any) -> Expression:
    from shoal.workflow._expressions._parse import compile_expression

    try:
        return compile_expression(to_string(source))
    except ExpressionError as exc:
        raise ExpressionError(f'"{name}" function expects a valid expression: {exc}') from None


def _item_context(ctx: Context, index: int, key: Any, item: Any) -> Context:
    machine = Machine(variables={"_.value": plain(item), "_.index": index, "_.key": key})
    inner = Context((machine,), False)
    inner.depth = ctx.depth + 1
    return inner


def _mapper(name: str) -> Handler:
    def handler(values: list[Any], ctx: Context) -> Any:
        _count(name, values, 2)
        if ctx.depth + 1 > 64:
            raise ExpressionError(f'"{name}" functions are nested too deeply')
        expr = _compile_inner(name, values[1])
        results: list[Expression] = []
        for index, (key, item) in enumerate(_items(name, values[0])):
            results.append(resolve(expr, _item_context(ctx, index, key, item)))
        if all(isinstance(result, Literal) for result in results):
            return [result.value_ for result in results if isinstance(result, Literal)]
        return Call("list", tuple(Argument(result) for result in results))

    return handler


def _filter(values: list[Any], ctx: Context) -> Any:
    _count("filter", values, 2)
    expr = _compile_inner("filter", values[1])
    kept: list[Any] = []
    for index, (key, item) in enumerate(_items("filter", values[0])):
        result = resolve(expr, _item_context(ctx, index, key, item))
        if type(result) is not Literal:
            raise ExpressionError(
                f'"filter" function: could not resolve the filter for index {index}: {result}'
            )
        if is_truthy(result.value_):
            kept.append(item)
    return kept


def _entries(values: list[Any], ctx: Context) -> Any:
    _count("entries", values, 1)
    mapping = to_map(values[0]) or {}
    return [{"key": key, "value": value} for key, value in mapping.items()]


def _eval(values: list[Any], ctx: Context) -> Any:
    _count("eval", values, 1)
    return _compile_inner("eval", values[0])


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"number out of range: {text}")
    return value


def _tojson(values: list[Any], ctx: Context) -> Any:
    _count("tojson", values, 1)
    return dump_json(values[0])


def _json(values: list[Any], ctx: Context) -> Any:
    _count("json", values, 1)
    if not isinstance(values[0], str):
        raise ExpressionError('"json" function argument should be a string')
    return json.loads(values[0], parse_constant=_reject_constant, parse_float=_finite_float)


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML without timestamps: dates stay strings, as JSON data has no date type."""


_YamlLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _YamlDumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _yaml_ready(value: Any) -> Any:
    if isinstance(value, float):
        return number(value) if value == value else value
    if isinstance(value, list):
        return [_yaml_ready(item) for item in value]
    if isinstance(value, dict):
        return {to_string(key): _yaml_ready(item) for key, item in value.items()}
    return value


def _json_ready(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    if isinstance(value, dict):
        return {to_string(key): _json_ready(item) for key, item in value.items()}
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return to_string(value)


def _toyaml(values: list[Any], ctx: Context) -> Any:
    _count("toyaml", values, 1)
    text = yaml.dump(
        _yaml_ready(values[0]),
        Dumper=_YamlDumper,
        indent=4,
        default_flow_style=False,
        allow_unicode=True,
        sort_keys=True,
        width=math.inf,
    )
    if text.endswith("\n...\n"):
        text = text[:-4]
    return text


def _yaml(values: list[Any], ctx: Context) -> Any:
    _count("yaml", values, 1)
    if not isinstance(values[0], str):
        raise ExpressionError('"yaml" function argument should be a string')
    return _json_ready(yaml.load(values[0], Loader=_YamlLoader))


def _shellquote(values: list[Any], ctx: Context) -> Any:
    return quote_words([to_string(value) for value in values])


def _shellparse(values: list[Any], ctx: Context) -> Any:
    _count("shellparse", values, 1)
    return split_words(to_string(values[0]))


@lru_cache(maxsize=256)
def _jq_program(query: str) -> Any:
    return jq.compile(query)


def _jq(values: list[Any], ctx: Context) -> Any:
    _count("jq", values, 2)
    query = to_string(values[1])
    try:
        program = _jq_program(query)
    except ValueError as exc:
        raise ExpressionError(f'"jq" error: could not parse the query: {query}: {exc}') from None
    try:
        return _json_ready(program.input_text(dump_json(values[0])).all())
    except ValueError as exc:
        raise ExpressionError(f'"jq" error: {exc}') from None


def _date(values: list[Any], ctx: Context) -> Any:
    _count("date", values, 0, 1)
    if ctx.compile_time:
        return NOT_READY
    layout = to_string(values[0]) if values else RFC3339_MILLIS
    return format_go_time(datetime.now(UTC), layout)


def _working_dir(ctx: Context) -> str | None:
    found, value = ctx.lookup("workingDir")
    if found and isinstance(value, str) and value.startswith("/"):
        return value
    return None


def _absolute(path: str, base: str) -> str:
    return clean_path(path if path.startswith("/") else posixpath.join(base, path))


def _relpath(values: list[Any], ctx: Context) -> Any:
    _count("relpath", values, 1, 2)
    destination = to_string(values[0])
    if len(values) == 2:
        base = to_string(values[1])
    else:
        cwd = _working_dir(ctx)
        if cwd is None:
            return NOT_READY
        base = cwd
    if not destination.startswith("/") or not base.startswith("/"):
        if destination.startswith("/") or base.startswith("/"):
            cwd = _working_dir(ctx)
            if cwd is None:
                return NOT_READY
        else:
            cwd = "/"  # both relative: the result does not depend on the working directory
        destination, base = _absolute(destination, cwd), _absolute(base, cwd)
    return posixpath.relpath(clean_path(destination), clean_path(base))


def _abspath(values: list[Any], ctx: Context) -> Any:
    _count("abspath", values, 1, 2)
    path = to_string(values[0])
    if path.startswith("/"):
        return clean_path(path)
    base: str | None = to_string(values[1]) if len(values) == 2 else None
    if base is None or not base.startswith("/"):
        cwd = _working_dir(ctx)
        if cwd is None:
            return NOT_READY
        base = cwd if base is None else _absolute(base, cwd)
    return _absolute(path, base)


def _makepath(values: list[Any], ctx: Context) -> Any:
    _count("makepath", values, 2)
    parent, path = to_string(values[0]), to_string(values[1])
    if path.startswith("/") or parent == "":
        return path
    return clean_path(posixpath.join(parent, path))


STDLIB: dict[str, StdFunction] = {
    fn.name: fn
    for fn in (
        StdFunction("string", _string, T_STRING),
        StdFunction("int", _int, T_INT),
        StdFunction("float", _float, T_FLOAT),
        StdFunction("bool", _bool, T_BOOL),
        StdFunction("list", _list),
        StdFunction("join", _join),
        StdFunction("split", _split),
        StdFunction("trim", _trim),
        StdFunction("len", _len),
        StdFunction("floor", _rounding("floor", math.floor)),
        StdFunction("ceil", _rounding("ceil", math.ceil)),
        StdFunction("round", _rounding("round", _round_half_away)),
        StdFunction("at", _at),
        StdFunction("chunk", _chunk),
        StdFunction("range", _range),
        StdFunction("map", _mapper("map")),
        StdFunction(WILDCARD_FUNCTION, _mapper(WILDCARD_FUNCTION)),
        StdFunction("filter", _filter),
        StdFunction("entries", _entries),
        StdFunction("eval", _eval),
        StdFunction("tojson", _tojson),
        StdFunction("json", _json),
        StdFunction("toyaml", _toyaml),
        StdFunction("yaml", _yaml),
        StdFunction("shellquote", _shellquote),
        StdFunction("shellparse", _shellparse),
        StdFunction("jq", _jq),
        StdFunction("date", _date),
        StdFunction("relpath", _relpath),
        StdFunction("abspath", _abspath),
        StdFunction("makepath", _makepath),
    )
}

# Every function name the engine itself knows (``any`` is resolved lazily, outside ``STDLIB``).
STANDARD_FUNCTIONS: frozenset[str] = (frozenset(STDLIB) | {"any"}) - {WILDCARD_FUNCTION}

__all__ = ["STANDARD_FUNCTIONS", "STDLIB", "call_any", "expand_arguments", "operate", "to_int_strict"]
