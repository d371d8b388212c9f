"""Timeouts of a step and of its ancestors kill the operation's whole process group."""

from __future__ import annotations

from collections.abc import Callable

from shoal.workflow._plan import Plan

from ._plans import Workspace, build, group, shell, wait_gone

MakeWorkspace = Callable[[Plan], Workspace]

SPAWN = 'sleep 30 & echo $! > "$SHOAL_DATA/child.pid"; wait'


def test_step_timeout_kills_a_background_child(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("slow", SPAWN, timeout_ms=300), shell("next", "echo next")))
    ws = workspace(plan)
    ws.data.mkdir(parents=True)
    result = ws.run()
    assert result.statuses() == {"slow": "timeout", "next": "skipped", "root": "failed"}
    execution = result.values("slow", "execution")
    assert len(execution) == 1 and execution[0]["details"] == "timed out after 300ms"
    child = int((ws.data / "child.pid").read_text())
    assert wait_gone(child), f"child sleep {child} survived the timeout"
    start, end = result.values("slow", "start")[0]["ts"], result.values("slow", "end")[0]["ts"]
    assert 250 <= end - start < 5000


def test_group_timeout_times_out_started_children_and_skips_the_rest(workspace: MakeWorkspace) -> None:
    plan = build(
        group(
            "root",
            group("g", shell("a", "true"), shell("b", SPAWN), shell("c", "echo c"), timeout_ms=400),
            shell("after", "echo after", condition="always"),
        )
    )
    ws = workspace(plan)
    ws.data.mkdir(parents=True)
    result = ws.run()
    assert result.statuses() == {
        "a": "passed",
        "b": "timeout",
        "c": "skipped",
        "g": "timeout",
        "after": "passed",
        "root": "failed",
    }
    assert result.values("b", "execution")[0]["details"] == "timed out after 400ms (timeout of g)"
    assert result.names("c") == ["end"]
    assert wait_gone(int((ws.data / "child.pid").read_text()))


def test_timeout_is_not_retried(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("slow", "sleep 5", timeout_ms=200, retry=3)))
    result = workspace(plan).run()
    assert result.statuses()["slow"] == "timeout"
    assert len(result.values("slow", "execution")) == 1
    assert result.names("slow").count("iteration") == 0


def test_term_ignoring_step_is_killed_after_the_grace(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("stubborn", "trap '' TERM; sleep 3; echo survived", timeout_ms=200)))
    result = workspace(plan).run()
    assert result.statuses()["stubborn"] == "timeout"
    assert "survived" not in result.text
    start, end = result.values("stubborn", "start")[0]["ts"], result.values("stubborn", "end")[0]["ts"]
    assert end - start < 2500


def test_deadline_of_an_ancestor_spans_containers(workspace: MakeWorkspace) -> None:
    plan = build(
        group("root", group("g", shell("a", "sleep 0.3"), shell("b", "sleep 5"), timeout_ms=500)),
        cuts=["b"],
    )
    result = workspace(plan).run_all()
    assert result.statuses() == {"a": "passed", "b": "timeout", "g": "timeout", "root": "failed"}
    g_start = result.values("g", "start")[0]["ts"]
    b_end = result.values("b", "end")[0]["ts"]
    assert b_end - g_start < 3000
