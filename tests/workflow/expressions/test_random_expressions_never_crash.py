"""Property tests: any text compiles or fails with a positioned ExpressionError, and the normalized
text of a compiled expression compiles back to itself with the same meaning."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.workflow._expressions import (
    Expression,
    ExpressionError,
    Machine,
    compile_expression,
    compile_template,
    to_string,
)
from shoal.workflow._expressions._parse import parse
from shoal.workflow._expressions._values import dump_json

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that exercise every token kind, plus some that start none.
SYNTAX = st.sampled_from(
    [
        *"abcxyz_019 .*,()[]{}:?!=<>&|+-/%\"'\\\n\t#@$~`;",
        "null",
        "true",
        "false",
        "...",
        "**",
        "&&",
        "||",
        "<>",
        "==",
        "{{",
        "}}",
        "env.X",
        "f(",
        "_wc(",
    ]
)
NOISE = st.lists(SYNTAX, max_size=40).map("".join)


def _is_positioned(exc: ExpressionError, text: str) -> bool:
    return exc.position is not None and 0 <= exc.position <= len(text)


@SETTINGS
@given(NOISE)
def test_random_text_parses_or_fails_with_a_position(text: str) -> None:
    try:
        parse(text)
    except ExpressionError as exc:
        assert _is_positioned(exc, text), exc


@SETTINGS
@given(NOISE)
def test_random_text_compiles_or_fails_with_an_expression_error(text: str) -> None:
    try:
        expr = compile_expression(text)
    except ExpressionError as exc:
        assert exc.message
        return
    again = compile_expression(expr.source())
    assert again.source() == expr.source()


@SETTINGS
@given(st.lists(st.one_of(SYNTAX, st.text(max_size=3)), max_size=30).map("".join))
def test_random_templates_compile_or_fail_with_a_position(text: str) -> None:
    try:
        expr = compile_template(text)
    except ExpressionError as exc:
        assert _is_positioned(exc, text), exc
        return
    rendered = expr.template()
    again = compile_template(rendered)
    assert again.template() == rendered
    if expr.is_static():
        assert again.value() == expr.value()


# ---------------------------------------------------------------------------------------------------
# Well-formed expressions, generated from the grammar


NAMES = st.sampled_from(["a", "b", "c", "m", "m.k", "l.0", "env.X", "l.*", "_.value"])
OPERATORS = st.sampled_from(
    ["+", "-", "*", "/", "%", "**", "==", "=", "!=", "<>", "<", "<=", ">", ">=", "&&", "||"]
)
STRINGS = st.text(alphabet=st.sampled_from(list("ab {}'\"\\\n\u00e9")), max_size=5)
LITERALS = st.one_of(
    st.integers(min_value=-1000, max_value=1000).map(str),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(repr),
    STRINGS.map(json.dumps),
    STRINGS.map(lambda s: "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"),
    st.sampled_from(["true", "false", "null", "[]", "{}", '[1, "x", [2]]', '{"k": 1, "a": [true]}']),
)
FUNCTIONS = st.sampled_from(
    ["string", "len", "join", "list", "bool", "int", "any", "unknown", "split", "trim"]
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, OPERATORS, children).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(children, children, children).map(lambda t: f"{t[0]} ? {t[1]} : {t[2]}"),
        children.map(lambda c: f"({c})"),
        children.map(lambda c: f"!{c}"),
        children.map(lambda c: f"-{c}"),
        st.tuples(FUNCTIONS, st.lists(children, max_size=3), st.booleans()).map(
            lambda t: f"{t[0]}({', '.join(t[1])}{'...' if t[2] and t[1] else ''})"
        ),
        st.tuples(children, st.sampled_from(["0", "k", "*"])).map(lambda t: f"({t[0]}).{t[1]}"),
        st.tuples(children, st.sampled_from(["0", "k", "*"])).map(lambda t: f"list({t[0]}).{t[1]}"),
        st.tuples(children, st.sampled_from(["0", "k", "*"])).map(lambda t: f"({t[0]} ? m : l).{t[1]}"),
    )


EXPRESSIONS = st.recursive(st.one_of(LITERALS, NAMES), _combine, max_leaves=12)

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from([0.5, -2.25, 1e-7]),
    st.sampled_from(["", "0", "x", "false", "3", "a b"]),
    st.lists(st.integers(-3, 3), max_size=3),
)


def _outcome(expr: Expression, machine: Machine) -> Any:
    try:
        result = expr.resolve(machine)
    except ExpressionError:
        return "<error>"
    if not result.is_static():
        return ("partial", result.source())
    return ("value", dump_json(result.value()))


def _compiles(source: str) -> Expression | None:
    try:
        return compile_expression(source)
    except ExpressionError:
        return None


@SETTINGS
@given(EXPRESSIONS, VALUES, VALUES, VALUES)
def test_normalized_text_is_stable_and_keeps_the_meaning(source: str, a: Any, b: Any, c: Any) -> None:
    first = _compiles(source)
    if first is None:
        return
    normalized = first.source()
    second = compile_expression(normalized)
    assert second.source() == normalized
    machine = Machine(
        variables={"a": a, "b": b, "c": c, "m": {"k": a}, "l": [{"k": b}, {"k": c}], "_.value": 1}
    )
    assert _outcome(second, machine) == _outcome(first, machine)


@SETTINGS
@given(EXPRESSIONS)
def test_template_text_of_an_expression_means_the_same(source: str) -> None:
    expr = _compiles(source)
    if expr is None:
        return
    template = compile_template(expr.template())
    machine = Machine(variables={"a": 1, "b": "x", "c": [1, 2], "m": {"k": 2}, "l": [{"k": 3}], "_.value": 0})
    try:
        expected = expr.resolve(machine)
    except ExpressionError:
        return
    if not expected.is_static():
        return
    assert template.resolve(machine).value() == to_string(expected.value())
