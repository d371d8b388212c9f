"""The expression conformance vectors (``shared/conformance/expressions``) and how to run one."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from shoal.workflow._expressions import (
    Expression,
    ExpressionError,
    Machine,
    compile_expression,
    compile_template,
    filesystem_machine,
    is_truthy,
    to_float,
    to_int,
    to_list,
    to_map,
    to_string,
)

CONFORMANCE = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "expressions"


def load(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((CONFORMANCE / name).read_text())
    return cases


def case_id(case: dict[str, Any], index: int) -> str:
    test = case["source"].rsplit(":", 1)[-1]
    text = case["expr"] if "expr" in case else case["input"]
    if not isinstance(text, str):
        text = " ".join(text)
    text = text.replace("\n", "\\n")
    if len(text) > 50:
        text = text[:47] + "..."
    check = case.get("check") or case.get("fn")
    return f"{index:03d}-{test}-{check}-{text}"


def machines_for(case: dict[str, Any]) -> list[Machine]:
    machines = [Machine(variables=case.get("vars") or {}, expressions=case.get("var_exprs") or {})]
    if "fs" in case:
        machines.append(filesystem_machine(case["fs"]["files"], case["fs"]["cwd"]))
    return machines


def compile_case(case: dict[str, Any]) -> Expression:
    if case["mode"] == "template":
        return compile_template(case["expr"])
    return compile_expression(case["expr"])


_CONVERSIONS = {
    "int": to_int,
    "float": to_float,
    "map": to_map,
    "list": to_list,
}


def run_vector(case: dict[str, Any]) -> None:
    """Compile, resolve and check one vector; raises ``AssertionError`` on a mismatch."""
    check = case["check"]
    phase = case.get("phase")
    if check == "error" and phase == "compile":
        try:
            compile_case(case)
        except ExpressionError as exc:
            assert exc.message
            return
        raise AssertionError("compiling should have failed")
    expr = compile_case(case)
    if check == "error" and phase == "resolve":
        try:
            expr.resolve(*machines_for(case), final=bool(case.get("final")))
        except ExpressionError as exc:
            assert exc.message
            return
        raise AssertionError("resolving should have failed")
    result = expr.resolve(*machines_for(case), final=bool(case.get("final")))
    expected = case["expected"]
    if check == "normalized":
        assert result.source() == expected
        return
    if check == "normalized_template":
        assert result.template() == expected
        return
    assert result.is_static(), f"not static: {result.source()}"
    value = result.value()
    if check == "error":
        try:
            _CONVERSIONS[phase](value)
        except ExpressionError:
            return
        raise AssertionError(f"converting to {phase} should have failed")
    if check == "string":
        assert to_string(value) == expected
    elif check == "bool":
        assert is_truthy(value) is expected
    elif check == "int":
        assert to_int(value) == expected
    elif check == "float":
        assert math.isclose(to_float(value), expected, abs_tol=case.get("delta", 1e-12))
    elif check == "map":
        assert to_map(value) == expected
    elif check == "list":
        assert to_list(value) == expected
    elif check == "json":
        if case.get("unordered"):
            assert Counter(json.dumps(v, sort_keys=True) for v in value) == Counter(
                json.dumps(v, sort_keys=True) for v in expected
            )
        else:
            assert value == expected
    else:
        raise AssertionError(f"unknown check {check}")
