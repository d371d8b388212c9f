"""Operators: precedence, JS-like && and ||, string equality, float ordering, number printing."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.workflow._expressions import ExpressionError, compile_expression, is_truthy, to_string


def value_of(source: str) -> Any:
    expr = compile_expression(source).resolve()
    assert expr.is_static(), expr.source()
    return expr.value()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 || 0 && 0", 0),  # one level, left to right: (1 || 0) && 0
        ("0 && 1 || 2", 2),
        ('"" || "x"', "x"),
        ('"a" && "b"', "b"),
        ("null || 5", 5),
        ("[] || 3", 3),
        ("{} && 3", {}),
    ],
)
def test_logical_operators_return_an_operand(source: str, expected: Any) -> None:
    assert value_of(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('5 == "5"', True),
        ('5.0 == "5"', True),
        ('true == "true"', True),
        ("null == ''", True),
        ('[1,2] == "1,2"', True),
        ('{"b":1,"a":2} == \'{"a":2,"b":1}\'', True),
        ('"10" < "9"', False),  # numbers, not text
        ('"1e3" > 999', True),
        ("1 <> 1", False),
        ("1 = 1", True),
    ],
)
def test_equality_compares_string_forms_and_ordering_compares_floats(source: str, expected: bool) -> None:
    assert value_of(source) is expected


def test_ordering_a_non_number_fails() -> None:
    with pytest.raises(ExpressionError, match="number"):
        compile_expression('"abc" < 1')


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('1 + "2"', "12"),
        ('"a" + null', "a"),
        ("1 + 2", 3),
        ("null + 2", 2),
        ("7 % 4", 3),
        ("-7 % 4", -3),
        ("2 ** 10", 1024),
        ("2 ** 3 ** 2", 64),  # left to right, as in Testkube
        ("10 / 4", 2.5),
        ("-2 ** 2", 4),  # unary minus binds tightest
        ("-3 + 2", -1),
        ("!0 + 'x'", "truex"),
    ],
)
def test_arithmetic(source: str, expected: Any) -> None:
    result = value_of(source)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("source", ["1 / 0", "1 % 0", "1 % (2 - 2)"])
def test_division_by_zero_fails_at_compile_time(source: str) -> None:
    with pytest.raises(ExpressionError, match="by zero"):
        compile_expression(source)


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        ("", False),
        ("false", False),
        ("0", False),
        ("off", False),
        (0, False),
        (0.0, False),
        ([], False),
        ({}, False),
        ("False", True),
        ("OFF", True),
        ("no", True),
        (0.5, True),
        ([0], True),
        ({"a": None}, True),
    ],
)
def test_truthiness(value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (6.0, "6"),
        (-0.0, "0"),
        (2.5, "2.5"),
        (1e21, "1e+21"),
        (123456789.0, "123456789"),
        (None, ""),
        (True, "true"),
        ([1, [2, 3], None, "x"], "1,2,3,,x"),
        ({"b": 1.0, "a": [1]}, '{"a":[1],"b":1}'),
        (float("inf"), "+Inf"),
    ],
)
def test_string_forms(value: Any, text: str) -> None:
    assert to_string(value) == text


def test_comparisons_cannot_be_chained() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression("1 < 2 < 3")
    assert caught.value.position == 6


def test_parenthesised_comparisons_compose() -> None:
    assert value_of("(1 < 2) == true") is True


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("true ? 1 : 2", 1),
        ("false ? 1 : true ? 2 : 3", 2),
        ("false ? 1 : false ? 2 : 3", 3),
        ("true ? false ? 1 : 2 : 3", 2),
        ("1 && 0 ? 'y' : 'n'", "n"),
        ("true ? 1 || 0 : 2", 1),
    ],
)
def test_ternary_nests_to_the_right(source: str, expected: Any) -> None:
    assert value_of(source) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("[10, 20].1", 20),
        ('{"k": {"a": "v"}}.k.a', "v"),
        ('{"k": 1}.missing', None),
        ('"abc".2', "c"),
        ("list(1, 2).0", 1),
        ('[{"ip": "a"}, {"ip": "b"}].*.ip', ["a", "b"]),
    ],
)
def test_property_access_after_any_value(source: str, expected: Any) -> None:
    assert value_of(source) == expected


def test_property_access_out_of_bounds_fails() -> None:
    with pytest.raises(ExpressionError, match="out of bounds"):
        compile_expression("[1].3")
