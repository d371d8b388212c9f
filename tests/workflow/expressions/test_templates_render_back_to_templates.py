"""Templates: islands are stringified, static text escapes braces, errors point into the template."""

from __future__ import annotations

import pytest

from shoal.workflow._expressions import (
    ExpressionError,
    Machine,
    Template,
    compile_template,
    expand_template_list,
)


def test_text_without_islands_is_a_literal() -> None:
    expr = compile_template("plain } text {")
    assert expr.is_static()
    assert expr.value() == "plain } text {"


def test_islands_are_stringified_and_merged() -> None:
    expr = compile_template("a{{ [1, 2] }}b{{ null }}c{{ {'x': 1} }}".replace("'", '"'))
    assert expr.value() == 'a1,2bc{"x":1}'


def test_unknown_islands_stay_as_islands() -> None:
    expr = compile_template("echo {{ env.A }} and {{ 1 + 1 }} and {{ env.B + 'x' }}")
    assert isinstance(expr, Template)
    assert expr.template() == "echo {{env.A}} and 2 and {{env.B}}x"
    assert expr.source() == '"echo "+string(env.A)+" and 2 and "+(env.B+"x")'


def test_a_single_unknown_island_is_its_expression() -> None:
    expr = compile_template("{{ env.A }}")
    assert expr.source() == "string(env.A)"
    assert expr.template() == "{{env.A}}"


def test_resolution_completes_a_template() -> None:
    expr = compile_template("{{ a }}-{{ b }}")
    partial = expr.resolve(Machine(variables={"a": 1}))
    assert partial.template() == "1-{{b}}"
    assert partial.resolve(Machine(variables={"b": [2, 3]})).value() == "1-2,3"


@pytest.mark.parametrize(
    "text",
    [
        "{{ '{{' }} literal braces {{ '}}' }}",
        "a { b {{ c }} {",
        'json {"a": {{ x }}}',
        "{{ env.X }}{{ '{' }}",
        "",
        "}}{{ 1 }}}}",
    ],
)
def test_template_text_compiles_back_to_the_same_template(text: str) -> None:
    first = compile_template(text)
    again = compile_template(first.template())
    assert again.template() == first.template()
    assert again.source() == first.source()


def test_braces_in_static_text_are_escaped() -> None:
    assert compile_template("{{ '{{x}} {y}' }}").template() == '{{"{{"}}x}} {{"{"}}y}'


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("abc {{ 1 + ", 4),  # never closed: points at the opening braces
        ("abc {{ 1 # 2 }}", 9),
        ("x {{ a b }}", 7),
        ("{{ 'open }}", 3),
        ("ok {{ 1 }} then {{ f( }}", 22),
    ],
)
def test_errors_point_into_the_template(text: str, position: int) -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_template(text)
    assert caught.value.position == position


def test_a_json_object_right_after_the_braces_is_an_island() -> None:
    with pytest.raises(ExpressionError, match="JSON"):
        compile_template("{{{ d }}")


def test_empty_islands_vanish() -> None:
    assert compile_template("a{{ }}b{{}}c").value() == "abc"


def test_argv_items_keep_unresolved_templates_as_text() -> None:
    items = ["echo", "{{ env.X }}", "{{ list(1, env.Y) }}", "--n={{ n }}"]
    assert expand_template_list(items, Machine(variables={"n": 3})) == [
        "echo",
        "{{env.X}}",
        "{{list(1,env.Y)}}",
        "--n=3",
    ]


def test_argv_items_that_are_null_disappear() -> None:
    assert expand_template_list(["a", "{{ null }}", "b", "{{ [] }}"]) == ["a", "b"]


def test_final_argv_resolution_fails_on_unknown_names() -> None:
    with pytest.raises(ExpressionError, match="unknown variable"):
        expand_template_list(["{{ env.X }}x"], final=True)
    with pytest.raises(ExpressionError, match="unknown variable"):
        expand_template_list(["{{ env.X }}"], final=True)


def test_a_wildcard_item_is_joined_not_expanded() -> None:
    machine = Machine(variables={"services.db": [{"ip": "1"}, {"ip": "2"}]})
    assert expand_template_list(["{{ services.db.*.ip }}"], machine) == ["1,2"]
    assert expand_template_list(["{{ list(services.db.*.ip...) }}"], machine) == ["1", "2"]
