"""Partial evaluation: known names are substituted, unknown ones stay as normalized source text."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.workflow._expressions import (
    Expression,
    ExpressionError,
    Machine,
    compile_expression,
    compile_template,
    filesystem_machine,
)


def resolved(source: str, *machines: Machine, final: bool = False) -> Expression:
    return compile_expression(source).resolve(*machines, final=final)


@pytest.mark.parametrize(
    ("source", "normalized"),
    [
        ("a - (b - c)", "a-(b-c)"),
        ("a / (b * c)", "a/(b*c)"),
        ("(a - b) - c", "a-b-c"),
        ("a || (b && c)", "a||(b&&c)"),
        ("(a || b) && c", "a||b&&c"),
        ("(a == b) != c", "(a==b)!=c"),
        ("(x ? y : z) ? u : v", "(x ? y : z) ? u : v"),
        ("x ? y : (z ? u : v)", "x ? y : z ? u : v"),
        ("(!a).b", "(!a).b"),
        ("!(a + 1)", "!(a+1)"),
        ("-(a * 2)", "-(a*2)"),
        ("a + ('x' + b)", 'a+("x"+b)'),
        ("'s' + ('x' + b)", '"sx"+b'),
        ("string(a) + ('x' + b)", 'string(a)+"x"+b'),
        ("a + (b + 'x')", 'a+(b+"x")'),
        ("f(a, b...)", "f(a,b...)"),
        ("services . db . * . ip", '_wc(services.db,"_.value.ip")'),
        ("f(x).*.ip", '_wc(f(x),"_.value.ip")'),
        ("a <> 1 && b = 2", "a<>1&&b=2"),
    ],
)
def test_normalized_text_keeps_the_meaning(source: str, normalized: str) -> None:
    expr = resolved(source)
    assert expr.source() == normalized
    assert compile_expression(normalized).source() == normalized


def test_dotted_names_are_looked_up_whole_first() -> None:
    machine = Machine(variables={"config.x": "whole", "config": {"x": "property"}})
    assert resolved("config.x", machine).value() == "whole"


def test_dotted_names_fall_back_to_property_access() -> None:
    machine = Machine(variables={"config": {"x": {"y": [1, 2]}}})
    assert resolved("config.x.y.1", machine).value() == 2
    assert resolved("config.x.missing", machine).value() is None


def test_a_variable_may_stand_for_an_expression() -> None:
    machine = Machine(
        variables={"status": "failed"},
        expressions={"passed": 'status == "passed"', "failed": compile_expression("!passed")},
    )
    assert resolved("failed && 'yes'", machine).value() == "yes"


def test_an_expression_variable_stays_partial_when_its_names_are_unknown() -> None:
    machine = Machine(expressions={"passed": 'status == "passed"'})
    assert resolved("passed || x", machine).source() == 'status=="passed"||x'


def test_the_first_machine_that_knows_a_name_wins() -> None:
    first = Machine(variables={"a": 1})
    second = Machine(variables={"a": 2, "b": 3})
    assert resolved("a + b", first, second).value() == 4


def test_fallback_answers_names_the_mappings_do_not_hold() -> None:
    seen: list[str] = []

    def env(name: str) -> tuple[Any, bool]:
        seen.append(name)
        if name.startswith("env."):
            return "", True
        return None, False

    machine = Machine(fallback=env)
    assert resolved("env.UNSET + 'x'", machine).value() == "x"
    assert "env.UNSET" in seen


def test_machine_functions_run_once_their_arguments_are_known() -> None:
    calls: list[tuple[Any, ...]] = []

    def secret(*args: Any) -> str:
        calls.append(args)
        return f"<{args[0]}/{args[1]}>"

    machine = Machine(functions={"secret": secret}, variables={"name": "db"})
    assert resolved("secret(name, 'password')", machine).value() == "<db/password>"
    assert resolved("secret(other, 'password')", machine).source() == 'secret(other,"password")'
    assert calls == [("db", "password")]


def test_machine_functions_may_return_expressions() -> None:
    machine = Machine(functions={"later": lambda: compile_expression("env.X + 1")})
    assert resolved("later()", machine).source() == "env.X+1"


def test_final_resolution_fails_on_unknown_names_and_functions() -> None:
    with pytest.raises(ExpressionError, match="unknown variable: nope") as caught:
        resolved("1 + nope", final=True)
    assert caught.value.unknown
    with pytest.raises(ExpressionError, match="unknown function: nope") as caught:
        resolved("nope(1)", final=True)
    assert caught.value.unknown


def test_any_skips_unknown_names_at_the_final_stage() -> None:
    assert resolved("any(env.MISSING, missing(), 'x')", final=True).value() == "x"
    assert resolved("any(env.MISSING)", final=True).value() is None


def test_any_keeps_what_it_cannot_decide_yet() -> None:
    assert resolved("any(a, []..., n...)", Machine(variables={"n": None})).source() == "any(a)"
    assert resolved("any(a, [])").value() == []


def test_circular_expressions_fail_cleanly() -> None:
    machine = Machine(expressions={"a": "b + 1", "b": "a + 1"})
    with pytest.raises(ExpressionError, match="maximum call stack"):
        resolved("a", machine)


def test_eval_of_itself_fails_cleanly() -> None:
    machine = Machine(expressions={"me": 'eval("me")'})
    with pytest.raises(ExpressionError):
        resolved("me", machine)


def test_date_is_not_frozen_at_compile_time() -> None:
    compiled = compile_expression('date("2006")')
    assert not compiled.is_static()
    assert compiled.resolve().value().isdigit()


def test_relative_paths_wait_for_the_working_directory() -> None:
    assert resolved('abspath("x")').source() == 'abspath("x")'
    assert resolved('relpath("/a/b")').source() == 'relpath("/a/b")'
    machine = filesystem_machine({}, "/work")
    assert resolved('abspath("x")', machine).value() == "/work/x"
    assert resolved('relpath("/a/b")', machine).value() == "../a/b"
    assert resolved('relpath("sub/f", "sub")').value() == "f"
    assert resolved('abspath("x", "/base")').value() == "/base/x"


def test_resolving_with_nothing_known_returns_the_same_tree() -> None:
    expr = compile_expression("a + b * f(c)")
    assert expr.resolve() is expr
    template = compile_template("x{{ a }}y{{ b }}")
    assert template.resolve() is template


def test_known_parts_fold_inside_unknown_ones() -> None:
    machine = Machine(variables={"n": 2})
    assert resolved("f(n * 3, g) + 'x'", machine).source() == 'f(6,g)+"x"'
    assert resolved("cond ? n : n + 1", machine).source() == "cond ? 2 : 3"


def test_boolean_typed_sides_simplify() -> None:
    assert resolved("bool(a) && true").source() == "bool(a)"
    assert resolved("bool(a) || true").source() == "true"
    assert resolved("a && true").source() == "a&&true"  # a may be any value
