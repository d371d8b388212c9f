"""The tree API others build on: node classes, walking, names used, immutability."""

from __future__ import annotations

import dataclasses

import pytest

from shoal.workflow._expressions import (
    NONE,
    Accessor,
    Argument,
    Binary,
    Call,
    Literal,
    Machine,
    Property,
    Template,
    Ternary,
    Unary,
    compile_expression,
    compile_template,
)


def test_nodes_are_the_documented_dataclasses() -> None:
    tree = compile_expression('c ? !f(a, l...).x : (-b = "s") <> d')
    assert tree == Ternary(
        Accessor("c"),
        Unary("!", Property(Call("f", (Argument(Accessor("a")), Argument(Accessor("l"), True))), "x")),
        Binary("!=", Binary("==", Unary("-", Accessor("b")), Literal("s")), Accessor("d")),
    )


def test_operators_are_canonical_but_keep_their_spelling_in_text() -> None:
    tree = compile_expression("a = 1")
    assert isinstance(tree, Binary)
    assert tree.op == "=="
    assert tree.source() == "a=1"
    assert Binary("==", Accessor("a"), Literal(1)).source() == "a==1"


def test_nodes_are_immutable() -> None:
    tree = compile_expression("a + 1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        tree.op = "-"  # type: ignore[misc]


def test_values_are_copies() -> None:
    tree = compile_expression("[[1], {}]")
    first = tree.value()
    first[0].append(2)
    first[1]["x"] = 1
    assert tree.value() == [[1], {}]


def test_walk_is_pre_order() -> None:
    tree = compile_expression("f(a + b, !c)")
    assert [node.source() for node in tree.walk()] == ["f(a+b,!c)", "a+b", "a", "b", "!c", "c"]


def test_accessors_and_functions() -> None:
    tree = compile_expression("join(services.db.*.ip) + f(x.y, g(z)) + list(w).0")
    assert tree.accessors() == {"services.db", "x.y", "z", "w"}
    assert tree.functions() == {"join", "_wc", "f", "g", "list"}


def test_static_values() -> None:
    assert NONE.is_static() and NONE.value() is None
    assert compile_expression("").value() is None
    assert not compile_expression("a").is_static()
    with pytest.raises(Exception, match="not static"):
        compile_expression("a").value()


def test_templates_with_unknown_islands_are_template_nodes() -> None:
    tree = compile_template("a{{ x }}b")
    assert tree == Template((Literal("a"), Call("string", (Argument(Accessor("x")),)), Literal("b")))
    assert str(tree) == tree.source() == '"a"+string(x)+"b"'


def test_expressions_can_be_machine_values() -> None:
    inner = compile_template("{{ env.HOME }}/bin")
    machine = Machine(variables={"path": inner})
    assert compile_expression("path + ':' + x").resolve(machine).template() == "{{env.HOME}}/bin:{{x}}"


def test_compilation_is_cached() -> None:
    assert compile_expression("a + b") is compile_expression("a + b")
    assert compile_template("x{{ a }}") is compile_template("x{{ a }}")
