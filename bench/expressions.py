"""Expression engine throughput over a mix of the conformance vectors.

Prints one JSON line per figure (median of several runs after a warm-up):
``expression_evals_per_s`` (resolve an already compiled expression against its machines),
``compile_per_s`` (parse + constant folding, compile cache bypassed) and
``compile_cached_per_s`` (the cached path every repeated field goes through).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from shoal.workflow._expressions import (  # noqa: E402
    Expression,
    ExpressionError,
    Machine,
    compile_expression,
    compile_template,
    filesystem_machine,
)
from shoal.workflow._expressions._parse import compile_expression_uncached  # noqa: E402
from shoal.workflow._expressions._template import compile_template_uncached  # noqa: E402

VECTORS = ROOT.parent / "shared" / "conformance" / "expressions" / "vectors.json"
RUNS = 7
ROUNDS = 20


def _cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(VECTORS.read_text())
    usable = []
    for case in cases:
        if case["check"] == "error":
            continue
        try:
            if case["mode"] == "template":
                compile_template(case["expr"])
            else:
                compile_expression(case["expr"])
        except ExpressionError:
            continue
        usable.append(case)
    return usable


def _machines(case: dict[str, Any]) -> tuple[Machine, ...]:
    machines = [Machine(variables=case.get("vars") or {}, expressions=case.get("var_exprs") or {})]
    if "fs" in case:
        machines.append(filesystem_machine(case["fs"]["files"], case["fs"]["cwd"]))
    return tuple(machines)


def _measure(label: str, work: Callable[[], int]) -> None:
    work()  # warm-up
    rates = []
    for _ in range(RUNS):
        started = time.perf_counter()
        count = work()
        rates.append(count / (time.perf_counter() - started))
    print(
        json.dumps(
            {
                "bench": "expressions",
                "name": label,
                "value": round(statistics.median(rates), 1),
                "unit": "1/s",
                "runs": RUNS,
            }
        )
    )


def main() -> None:
    cases = _cases()
    compiled: list[tuple[Expression, tuple[Machine, ...], bool]] = []
    for case in cases:
        expr = (
            compile_template(case["expr"]) if case["mode"] == "template" else compile_expression(case["expr"])
        )
        compiled.append((expr, _machines(case), bool(case.get("final"))))
    sources = [(case["mode"] == "template", case["expr"]) for case in cases]

    def evaluate() -> int:
        for _ in range(ROUNDS):
            for expr, machines, final in compiled:
                expr.resolve(*machines, final=final)
        return ROUNDS * len(compiled)

    def compile_uncached() -> int:
        for _ in range(ROUNDS):
            for is_template, source in sources:
                if is_template:
                    compile_template_uncached(source)
                else:
                    compile_expression_uncached(source)
        return ROUNDS * len(sources)

    def compile_cached() -> int:
        for _ in range(ROUNDS):
            for is_template, source in sources:
                if is_template:
                    compile_template(source)
                else:
                    compile_expression(source)
        return ROUNDS * len(sources)

    _measure("expression_evals_per_s", evaluate)
    _measure("compile_per_s", compile_uncached)
    _measure("compile_cached_per_s", compile_cached)


if __name__ == "__main__":
    main()
