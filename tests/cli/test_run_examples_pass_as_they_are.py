"""Every workflow in examples/ runs with `shoal run` as it is, and passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from .run_helpers import execution, shoal_run

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
def test_example_passes(example: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = shoal_run([str(example), "-o", "json"], tmp_path / "home", monkeypatch)
    assert code == 0, err[-2000:]
    doc = execution(out)
    assert doc["result"]["status"] == "passed"
    if example.stem == "smoke":
        assert [(a["name"], a["size"]) for a in doc["artifacts"]] == [("data/reports/junit.xml", 177)]
        assert [r["summary"]["tests"] for r in doc["reports"]] == [2]
        assert [o["value"] for o in doc["output"]] == [{"answer": "42"}]
