"""Every workflow of the Testkube corpus marked `local: true` runs with `shoal run` and ends with the
status Testkube gives it, with the per-step statuses its steps imply — and so does every workflow
that needs nothing more than parallel workers and services (the toolkit's sub-plans run locally).

The workflows run concurrently in a module fixture, each through the `shoal` CLI entry point
(`shoal run FILE --name NAME -o json`) in a child forked from this interpreter, so the whole module
takes about as long as the slowest workflow (a 30 s sleep).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shoal.cli import main

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "testkube"
EXPECTED = yaml.safe_load((CORPUS / "expected.yaml").read_text()) if CORPUS.exists() else {"workflows": []}
LOCAL = [w for w in EXPECTED["workflows"] if w.get("local")]
# Workflows that run locally once `parallel` and `services` do; special-cases-dev-credentials needs
# the credentials of Testkube's own dev environment (expected.yaml says so) and cannot pass elsewhere.
TOOLKIT = [
    w for w in EXPECTED["workflows"]
    if not w.get("local") and w.get("needs") and set(w["needs"]) <= {"parallel", "services"}
    and w["name"] != "special-cases-dev-credentials"
]

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
SLOW = {"special-cases-30s", "special-cases-optional-step-timed-out", "special-cases-step-timeout-ok",
        "expected-fail-parallel-step-failed", "expected-fail-high-parallel-step-failed"}
INIT_FAILURES = {
    "expected-fail-missing-template": "some-non-existant-template-name",
    "expected-fail-template-missing-config-options": "message",
    "expected-fail-template-not-defined-config-options": "message",
    "expected-fail-volume-not-mounted": "missing-volume",
}


def _fork_shoal_run(args: list[str], home: Path, tag: str) -> tuple[int, Path, Path]:
    """Start `shoal ARGS` in a child forked from this interpreter (which has shoal imported): the
    same CLI entry point as the `shoal` command, without Python's start-up for each workflow.
    Returns the child's pid and the files its stdout and stderr go to."""
    out, err = home / f"{tag}.out", home / f"{tag}.err"
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 70
        try:
            os.environ["SHOAL_HOME"] = str(home)
            with out.open("wb") as fo, err.open("wb") as fe:
                os.dup2(fo.fileno(), 1)
                os.dup2(fe.fileno(), 2)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the child exits right after
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            sys.argv = ["shoal", *args]
            try:
                main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    return pid, out, err


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, dict[str, Any], str]]:
    home = tmp_path_factory.mktemp("shoal-home")
    # The long sleepers first, then the rest, a few at a time (they only fight for the CPUs
    # otherwise). Children are forked from this one thread: forking a multi-threaded process is unsafe.
    pending = sorted(LOCAL + TOOLKIT, key=lambda w: w["name"] not in SLOW)
    running: dict[int, tuple[str, Path, Path]] = {}
    done: dict[str, tuple[int, dict[str, Any], str]] = {}
    limit = len(SLOW) + 4
    while pending or running:
        while pending and len(running) < limit:
            entry = pending.pop(0)
            args = [
                "run",
                str(CORPUS / entry["file"]),
                "--name",
                entry["name"],
                "-t",
                str(CORPUS / "templates"),
                "-t",  # special-cases-step-sharing uses a template defined there
                str(CORPUS / "workflows" / "special-cases.yaml"),
                "-t",  # and special-cases-step-env-override one defined here
                str(CORPUS / "workflows"),
                "-o",
                "json",
            ]
            pid, out, err = _fork_shoal_run(args, home, entry["name"])
            running[pid] = (entry["name"], out, err)
        pid, status = os.waitpid(-1, 0)
        if pid not in running:
            continue
        name, out, err = running.pop(pid)
        try:
            doc = json.loads(out.read_text())
        except ValueError:
            doc = {}
        done[name] = (os.waitstatus_to_exitcode(status), doc, err.read_text(errors="replace"))
    return done


def _top_level(doc: dict[str, Any]) -> list[str]:
    steps = doc["result"]["steps"]
    return [steps[node["ref"]]["status"] for node in doc["signature"]]


@pytest.mark.slow
@pytest.mark.parametrize("entry", LOCAL + TOOLKIT, ids=[w["name"] for w in LOCAL + TOOLKIT])
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
