"""Pass/fail, negative, optional, conditions and group results, under dash, bash --posix and busybox sh."""

from __future__ import annotations

from collections.abc import Callable

from shoal.workflow._plan import Plan

from ._plans import Workspace, build, group, run, shell

MakeWorkspace = Callable[[Plan], Workspace]


def test_passing_and_failing_steps_end_with_their_status(workspace: MakeWorkspace) -> None:
    plan = build(
        group("root", shell("ok", "echo hello"), shell("bad", "exit 3"), shell("after", "echo never"))
    )
    result = workspace(plan).run()
    assert result.code == 0
    assert result.statuses() == {"ok": "passed", "bad": "failed", "after": "skipped", "root": "failed"}
    assert result.values("bad", "execution") == [{"code": 3, "details": "", "iteration": 1}]
    assert "hello\n" in result.text and "never" not in result.text
    # a skipped step only gets an end marker
    assert result.names("after") == ["end"]
    assert result.names("ok") == ["start", "execution", "end"]
    assert result.markers[0][:2] == ("root", "start") and result.markers[-1][:2] == ("root", "end")


def test_negative_step_inverts_the_exit_code(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("neg", "exit 1", negative=True), shell("neg2", "true", negative=True)))
    result = workspace(plan).run()
    assert result.statuses() == {"neg": "passed", "neg2": "failed", "root": "failed"}
    assert result.values("neg", "execution")[0]["code"] == 1


def test_optional_failure_does_not_fail_the_group(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("opt", "exit 1", optional=True), shell("next", "echo next")))
    result = workspace(plan).run()
    assert result.statuses() == {"opt": "failed", "next": "passed", "root": "passed"}


def test_always_condition_runs_after_a_failure(workspace: MakeWorkspace) -> None:
    plan = build(
        group(
            "root",
            shell("bad", "exit 1"),
            shell("cleanup", "echo cleaning", condition="always"),
            shell("onfail", "echo onfail", condition="failed"),
            shell("skipped", "echo no"),
        )
    )
    result = workspace(plan).run()
    assert result.statuses() == {
        "bad": "failed",
        "cleanup": "passed",
        "onfail": "passed",
        "skipped": "skipped",
        "root": "failed",
    }
    assert "cleaning" in result.text and "onfail" in result.text


def test_false_condition_skips_a_whole_subtree(workspace: MakeWorkspace) -> None:
    plan = build(
        group(
            "root",
            group("g", shell("a", "echo a"), group("g2", shell("b", "echo b")), condition="never"),
            shell("c", "echo c"),
        )
    )
    result = workspace(plan).run()
    assert result.statuses() == {
        "a": "skipped",
        "b": "skipped",
        "g2": "skipped",
        "g": "skipped",
        "c": "passed",
        "root": "passed",
    }
    ends = [ref for ref, name, _ in result.markers if name == "end"]
    assert ends.index("a") < ends.index("g") and ends.index("g2") < ends.index("g")  # children first
    assert all(result.names(ref) == ["end"] for ref in ("a", "b", "g2", "g"))


def test_nested_groups_aggregate_results(workspace: MakeWorkspace) -> None:
    plan = build(
        group(
            "root",
            group("inner", shell("i1", "true"), group("deep", shell("d1", "exit 2"))),
            group("neg", shell("n1", "exit 1", condition="always"), negative=True, condition="always"),
            shell("after", "true", condition="always"),
        )
    )
    result = workspace(plan).run()
    assert result.statuses() == {
        "i1": "passed",
        "d1": "failed",
        "deep": "failed",
        "inner": "failed",
        "n1": "failed",
        "neg": "passed",
        "after": "passed",
        "root": "failed",
    }
    assert result.names("neg") == ["start", "end"]


def test_run_step_passes_arguments_without_a_shell(workspace: MakeWorkspace) -> None:
    plan = build(group("root", run("r", ["printf"], ["%s|", "a b", "$HOME", "'q'"])))
    result = workspace(plan).run()
    assert result.statuses()["r"] == "passed"
    assert "a b|$HOME|'q'|" in result.text


def test_missing_binary_is_a_clear_error(workspace: MakeWorkspace) -> None:
    plan = build(
        group(
            "root",
            run("r", ["no-such-binary-xyz"], ["x"], optional=True),
            shell("s", "no-such-binary-xyz", optional=True),
        )
    )
    result = workspace(plan).run()
    assert result.statuses() == {"r": "failed", "s": "failed", "root": "passed"}
    assert result.values("r", "execution") == [
        {"code": 127, "details": "command not found: no-such-binary-xyz", "iteration": 1}
    ]
    assert result.values("s", "execution") == [
        {"code": 127, "details": "exit code 127: command not found", "iteration": 1}
    ]


def test_signal_death_is_reported_by_name(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("s", "kill -TERM $$"), shell("k", "kill -KILL $$", condition="always")))
    result = workspace(plan).run()
    assert result.values("s", "execution") == [
        {"code": 143, "details": "killed by signal TERM", "iteration": 1}
    ]
    assert result.values("k", "execution") == [
        {"code": 137, "details": "killed by signal KILL", "iteration": 1}
    ]
    assert result.statuses()["s"] == "failed"


def test_output_without_trailing_newline_precedes_the_marker(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("s", "printf 'no newline'")))
    result = workspace(plan).run()
    assert b"no newline\x01\x05\x06s\x03execution" in result.output
