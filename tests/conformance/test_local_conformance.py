"""Every workflow of the Testkube corpus marked `local: true` runs with `shoal run` and ends with the
status Testkube gives it, with the per-step statuses its steps imply.

The workflows run concurrently (one `shoal run` process each) in a module fixture, so the whole
module takes about as long as the slowest workflow (a 30 s sleep).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "testkube"
EXPECTED = yaml.safe_load((CORPUS / "expected.yaml").read_text()) if CORPUS.exists() else {"workflows": []}
LOCAL = [w for w in EXPECTED["workflows"] if w.get("local")]

# Top-level step statuses (signature order) the steps of a workflow imply, where they say more than
# "every step passed" (passed workflows) or "initialization failed" (resolution failures).
STEP_STATUSES: dict[str, list[str]] = {
    "special-cases-optional-step-failed": ["failed", "passed"],
    "special-cases-optional-step-timed-out": ["timeout", "passed"],
    "special-cases-conditional-step-skipped": ["skipped", "passed"],
    "special-cases-conditional-step-failed-but-optional": ["failed", "passed"],
    "special-cases-negative-step": ["passed"],
    "special-cases-workingdir-override": ["passed", "passed", "passed"],
    "special-cases-step-sharing": ["passed", "passed", "passed"],
    "special-cases-custom-shared-volume-steps": ["passed", "passed", "passed"],
    "special-cases-artifact-double-asterisk": ["passed", "passed"],
    "expected-fail-negative-step": ["failed"],
    "expected-fail-conditional-step-failed": ["failed"],
    "expected-fail-step-retry": ["failed"],
}
SLOW = {"special-cases-30s", "special-cases-optional-step-timed-out", "special-cases-step-timeout-ok"}
INIT_FAILURES = {
    "expected-fail-missing-template": "some-non-existant-template-name",
    "expected-fail-template-missing-config-options": "message",
    "expected-fail-template-not-defined-config-options": "message",
    "expected-fail-volume-not-mounted": "missing-volume",
}


def _shoal(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOAL_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "shoal", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, dict[str, Any], str]]:
    home = tmp_path_factory.mktemp("shoal-home")

    def run(entry: dict[str, Any]) -> tuple[str, tuple[int, dict[str, Any], str]]:
        proc = _shoal(
            [
                "run",
                str(CORPUS / entry["file"]),
                "--name",
                entry["name"],
                "-t",
                str(CORPUS / "templates"),
                "-t",  # special-cases-step-sharing uses a template defined there
                str(CORPUS / "workflows" / "special-cases.yaml"),
                "-o",
                "json",
            ],
            home,
        )
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            doc = {}
        return entry["name"], (proc.returncode, doc, proc.stderr)

    # The long sleepers first, then the rest through a few workers: each run is a Python process, and
    # starting all of them at once only makes them fight for the CPUs.
    ordered = sorted(LOCAL, key=lambda w: w["name"] not in SLOW)
    with ThreadPoolExecutor(max_workers=max(4, len(SLOW) + 2)) as pool:
        return dict(pool.map(run, ordered))


def _top_level(doc: dict[str, Any]) -> list[str]:
    steps = doc["result"]["steps"]
    return [steps[node["ref"]]["status"] for node in doc["signature"]]


@pytest.mark.slow
@pytest.mark.parametrize("entry", LOCAL, ids=[w["name"] for w in LOCAL])
def test_local_workflow_ends_as_testkube_says(
    entry: dict[str, Any], results: dict[str, tuple[int, dict[str, Any], str]]
) -> None:
    code, doc, stderr = results[entry["name"]]
    assert doc, f"no execution JSON on stdout (exit {code}); stderr:\n{stderr[-3000:]}"
    result = doc["result"]
    expect = entry["expect"]
    assert result["status"] == expect, f"stderr:\n{stderr[-3000:]}\nresult: {json.dumps(result, indent=1)}"
    assert code == (0 if expect == "passed" else 1)
    assert result["predictedStatus"] == expect
    for ref, step in result["steps"].items():
        assert step["status"] in ("passed", "failed", "timeout", "skipped", "aborted"), (ref, step)
        if step["status"] != "skipped":
            assert step.get("startedAt") and step.get("finishedAt"), (ref, step)
    name = entry["name"]
    if name in INIT_FAILURES:
        init = result["initialization"]
        assert init["status"] == "failed"
        assert INIT_FAILURES[name] in init.get("errorMessage", "")
        assert all(s["status"] == "skipped" for s in result["steps"].values())
        return
    assert result["initialization"]["status"] == "passed"
    statuses = _top_level(doc)
    if name in STEP_STATUSES:
        assert statuses == STEP_STATUSES[name]
    elif expect == "passed":
        assert all(s == "passed" for s in statuses), statuses
    if expect == "failed":
        optional = {n["ref"] for n in doc["signature"] if n.get("optional")}
        failing = [
            n["ref"]
            for n in doc["signature"]
            if n["ref"] not in optional and result["steps"][n["ref"]]["status"] in ("failed", "timeout")
        ]
        assert failing, statuses


@pytest.mark.slow
def test_artifacts_of_the_double_asterisk_workflow_are_collected(
    results: dict[str, tuple[int, dict[str, Any], str]],
) -> None:
    _, doc, _ = results["special-cases-artifact-double-asterisk"]
    names = sorted(a["name"] for a in doc["artifacts"])
    assert names == ["example/directory/aaa/bbb/file1.txt", "example/directory/aaa/bbb/file2.log"]
    folder = Path(doc["artifactsDir"])
    assert (folder / "example/directory/aaa/bbb/file1.txt").read_text() == "file1\n"


@pytest.mark.slow
def test_execution_tags_are_resolved(results: dict[str, tuple[int, dict[str, Any], str]]) -> None:
    _, doc, _ = results["special-cases-execution-tags"]
    assert doc["tags"] == {"example": "execution-tag", "another": "tag-value", "id": doc["id"]}
