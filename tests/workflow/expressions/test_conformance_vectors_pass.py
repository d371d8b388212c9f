"""Every vector of vectors.json and every case of helpers.json behaves as Testkube's engine does."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.workflow._expressions import (
    Machine,
    compile_expression,
    expand_template_list,
    extract_pure_template_expression,
    is_wildcard_accessor_only,
)

from .conformance import case_id, load, run_vector

VECTORS = load("vectors.json")
HELPERS = load("helpers.json")


def test_the_corpus_is_complete() -> None:
    assert len(VECTORS) == 335
    assert len(HELPERS) == 51


@pytest.mark.parametrize("case", VECTORS, ids=[case_id(case, i) for i, case in enumerate(VECTORS)])
def test_vector(case: dict[str, Any]) -> None:
    run_vector(case)


@pytest.mark.parametrize("case", HELPERS, ids=[case_id(case, i) for i, case in enumerate(HELPERS)])
def test_helper(case: dict[str, Any]) -> None:
    fn = case["fn"]
    expected = case["expected"]
    if fn == "extract_pure_template_expression":
        inner = extract_pure_template_expression(case["input"])
        assert {"ok": inner is not None, "expr": inner} == expected
    elif fn == "is_wildcard_accessor_only":
        assert is_wildcard_accessor_only(case["input"]) is expected
    elif fn == "accessors":
        assert sorted(compile_expression(case["input"]).accessors()) == expected
    elif fn == "functions":
        assert sorted(compile_expression(case["input"]).functions()) == expected
    elif fn == "expand_template_list":
        machine = Machine(variables=case.get("vars") or {})
        assert expand_template_list(case["input"], machine, final=bool(case.get("final"))) == expected
    else:
        raise AssertionError(f"unknown helper {fn}")
