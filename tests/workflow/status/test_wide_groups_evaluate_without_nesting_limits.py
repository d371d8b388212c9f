"""A group of hundreds of required steps: its result expression is a flat conjunction far deeper than
the expression engine's nesting limit, and must still evaluate."""

from __future__ import annotations

import pytest

from shoal.workflow._status import evaluate_result


@pytest.mark.parametrize("width", [1, 129, 1000])
def test_flat_conjunction_of_many_refs(width: int) -> None:
    refs = [f"r{i:06d}" for i in range(width)]
    expression = "&&".join(refs)
    assert evaluate_result(expression, dict.fromkeys(refs, True)) is True
    assert evaluate_result(expression, {**dict.fromkeys(refs, True), refs[-1]: False}) is False
    assert evaluate_result(expression, {}) is True  # unfinished refs count as success


def test_negative_group_is_a_disjunction_of_negations() -> None:
    refs = [f"r{i:06d}" for i in range(500)]
    expression = "||".join(f"!{r}" for r in refs)
    assert evaluate_result(expression, dict.fromkeys(refs, True)) is False
    assert evaluate_result(expression, {**dict.fromkeys(refs, True), refs[250]: False}) is True


def test_other_forms_still_go_through_the_engine() -> None:
    assert evaluate_result("(a&&b)||c", {"a": False, "b": True, "c": True}) is True
    assert evaluate_result(" true ", {}) is True and evaluate_result("false", {}) is False
