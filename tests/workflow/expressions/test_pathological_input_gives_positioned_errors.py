"""Hostile input fails with a positioned ExpressionError, never a RecursionError or a hang."""

from __future__ import annotations

import pytest

from shoal.workflow._expressions import (
    ExpressionError,
    Machine,
    compile_expression,
    compile_template,
)
from shoal.workflow._expressions._parse import MAX_SOURCE_LENGTH


@pytest.mark.parametrize(
    "source",
    [
        "(" * 5000 + "1" + ")" * 5000,
        "!" * 5000 + "true",
        "-" * 5000 + "x",
        "1" + " + 1" * 5000,
        "a ? " * 3000 + "1" + " : 2" * 3000,
        "f(" * 3000 + ")" * 3000,
        "x" + ".*" * 3000,
        "f(x)" + ".a" * 3000,
    ],
)
def test_deep_nesting_is_refused_with_a_position(source: str) -> None:
    with pytest.raises(ExpressionError, match="nested too deeply") as caught:
        compile_expression(source)
    assert caught.value.position is not None
    assert 0 <= caught.value.position < len(source)


def test_deep_json_is_refused() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_expression("[" * 100_000 + "]" * 100_000)
    assert caught.value.position is not None


def test_overlong_sources_are_refused() -> None:
    with pytest.raises(ExpressionError, match="longer than"):
        compile_expression('"' + "x" * MAX_SOURCE_LENGTH + '"')
    with pytest.raises(ExpressionError, match="longer than"):
        compile_template("x" * (MAX_SOURCE_LENGTH + 1) + "{{ 1 }}")


def test_many_islands_are_fine() -> None:
    text = "".join(f"line {i}: {{{{ env.V{i} }}}}\n" for i in range(3000))
    expr = compile_template(text)
    assert expr.template() == text.replace("{{ ", "{{").replace(" }}", "}}")
    values = {f"env.V{i}": i for i in range(3000)}
    assert expr.resolve(Machine(variables=values)).value().endswith("line 2999: 2999\n")


def test_names_with_thousands_of_segments_resolve() -> None:
    name = ".".join(["a"] * 5000)
    machine = Machine(variables={"a": {"a": "leaf"}})
    assert compile_expression(name).resolve(machine).source() == name
    assert compile_expression("a.a.a").resolve(machine).is_static() is False


def test_exponential_variable_fan_out_is_cheap() -> None:
    expressions = {f"v{i}": f"v{i + 1} + v{i + 1}" for i in range(40)}
    machine = Machine(variables={"v40": 1}, expressions=expressions)
    assert compile_expression("v0").resolve(machine).value() == 2**40


def test_huge_ranges_are_refused() -> None:
    with pytest.raises(ExpressionError, match="range"):
        compile_expression("range(1e12)")
