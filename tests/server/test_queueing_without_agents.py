"""Runs nobody can take wait as queued with the reason shown; queued runs can be aborted."""

from __future__ import annotations

from tests.harness import RunningServer

WF = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: smoke}
spec:
  config:
    who: {type: string, default: world}
    password: {type: string, sensitive: true, default: ""}
  steps: [{name: hello, shell: "echo hello {{ config.who }}"}]
"""


def test_run_waits_queued_with_reason_and_numbers_increase(server: RunningServer) -> None:
    with server.client() as c:
        c.apply(WF)
        first = c.run("smoke", config={"who": "shoal", "password": "hunter22"})[0]
        second = c.run("smoke", match={"cluster": ["a"]})[0]
        assert (first["number"], second["number"]) == (1, 2)
        assert first["name"] == "smoke-1" and first["result"]["status"] == "queued"
        got = c.execution(first["id"])
        assert got["queueReason"] == "no agent is online in this environment"
        assert got["configParams"] == {"who": {"value": "shoal"}}  # the sensitive value is never shown
        assert [s["name"] for s in got["signature"]] == ["hello"]
        assert c.execution(second["id"])["queueReason"] == "no online agent matches cluster=a"
        listing = c.executions(workflow="smoke")
        assert listing["totals"]["queued"] == 2 and len(listing["results"]) == 2
        aborted = c.control(first["id"], "abort")
        assert aborted["result"]["status"] == "aborted"
        assert c.executions(status="aborted")["filtered"]["results"] == 1


def test_run_with_missing_required_config_fails_at_initialization(server: RunningServer) -> None:
    wf = WF.replace("who: {type: string, default: world}", "who: {type: string}")
    with server.client() as c:
        c.apply(wf)
        ex = c.run("smoke")[0]
        assert ex["result"]["status"] == "failed"
        assert "who" in (ex["result"]["initialization"]["errorMessage"] or "")


def test_sensitive_config_is_not_stored_in_clear(server: RunningServer) -> None:
    import sqlite3

    with server.client() as c:
        c.apply(WF)
        c.run("smoke", config={"password": "hunter22-secret"})
    db = sqlite3.connect(server.home / "shoal.db")
    dump = "\n".join(db.iterdump())
    assert "hunter22-secret" not in dump
