"""Retries (count, until, iteration markers) and step outputs, also across containers."""

from __future__ import annotations

from collections.abc import Callable

from shoal.workflow._plan import Plan

from ._plans import Workspace, build, group, shell

MakeWorkspace = Callable[[Plan], Workspace]

FLAKY = 'n=$(cat "$SHOAL_DATA/n" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$SHOAL_DATA/n"; [ $n -ge 3 ]'


def test_retry_until_passed_reruns_a_flaky_step(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("flaky", FLAKY, retry=5)))
    ws = workspace(plan)
    ws.data.mkdir(parents=True)
    result = ws.run()
    assert result.statuses() == {"flaky": "passed", "root": "passed"}
    assert result.names("flaky") == [
        "start", "execution", "iteration", "execution", "iteration", "execution", "end",
    ]  # fmt: skip
    assert [v["n"] for v in result.values("flaky", "iteration")] == [2, 3]
    assert [v["iteration"] for v in result.values("flaky", "execution")] == [1, 2, 3]
    assert [v["code"] for v in result.values("flaky", "execution")] == [1, 1, 0]


def test_retry_stops_after_the_limit(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("never", "exit 4", retry=2)))
    result = workspace(plan).run()
    assert result.statuses()["never"] == "failed"
    assert len(result.values("never", "execution")) == 3


def test_retry_until_expression_sees_the_attempt(workspace: MakeWorkspace) -> None:
    # re-run while the attempt passes, until it fails (self.failed), at most 4 attempts
    plan = build(
        group("root", shell("s", FLAKY.replace("-ge 3", "-lt 3"), retry=(3, "self.failed"), optional=True))
    )
    ws = workspace(plan)
    ws.data.mkdir(parents=True)
    result = ws.run()
    assert [v["code"] for v in result.values("s", "execution")] == [0, 0, 1]
    assert result.statuses()["s"] == "failed"


def test_failing_until_expression_is_a_clear_error(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("s", "exit 1", retry=(2, "int(env.WORD) > 1"))))
    ws = workspace(plan)
    ws.extra_env["WORD"] = "abc"
    result = ws.run()
    assert result.statuses()["s"] == "failed"
    (execution,) = result.values("s", "execution")
    assert execution["details"] == "retry.until: cannot convert 'abc' to a number"


def test_expression_that_fails_when_generated_fails_the_step(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("s", "echo {{ tojson(env.X) }}", optional=True), shell("t", "echo t")))
    result = workspace(plan).run()
    assert result.statuses() == {"s": "failed", "t": "passed", "root": "passed"}
    (execution,) = result.values("s", "execution")
    assert execution["code"] == -1
    assert execution["details"].startswith("shell: function tojson() is not available at run time")


def test_outputs_are_announced_masked_and_readable_later(workspace: MakeWorkspace) -> None:
    produce = (
        r'printf "  tok-123 \n\n" > "$SHOAL_OUTPUTS/token"; printf "%s\t%s" "a\"b\\c" d > "$SHOAL_OUTPUTS/quote"; '
        r'head -c 5000 /dev/zero | tr "\0" x > "$SHOAL_OUTPUTS/big"; mkdir "$SHOAL_OUTPUTS/dir"'
    )
    plan = build(
        group(
            "root",
            shell("p", produce, id="produce"),
            shell(
                "c", "echo got:{{ step.produce.outputs.token }}:{{ shellquote(step.produce.outputs.quote) }}:"
            ),
            shell("d", "echo missing:{{ step.produce.outputs.nothing }}:"),
        ),
        cuts=["c"],
    )
    result = workspace(plan).run_all()
    assert result.statuses() == {"p": "passed", "c": "passed", "d": "passed", "root": "passed"}
    assert result.values("p", "output") == [{"token": "tok-123", "quote": 'a"b\\c\td'}]
    assert result.names("p") == ["start", "output", "execution", "end"]
    assert 'got:tok-123:a"b\\c\td:' in result.text
    assert "missing::" in result.text


def test_outputs_are_cleared_between_attempts(workspace: MakeWorkspace) -> None:
    script = (
        'if [ -e "$SHOAL_DATA/second" ]; then echo two > "$SHOAL_OUTPUTS/b"; else '
        'touch "$SHOAL_DATA/second"; echo one > "$SHOAL_OUTPUTS/a"; exit 1; fi'
    )
    plan = build(
        group("root", shell("s", script, id="s", retry=1), shell("t", "echo [{{ step.s.outputs.a }}]"))
    )
    ws = workspace(plan)
    ws.data.mkdir(parents=True)
    result = ws.run()
    assert result.values("s", "output") == [{"a": "one"}, {"b": "two"}]
    assert "[]" in result.text
    assert (ws.data / ".steps" / "s").is_dir()


def test_step_results_directory_is_created(workspace: MakeWorkspace) -> None:
    plan = build(
        group(
            "root", shell("s", 'echo hi > "{{ step.results }}/f"; cat "$SHOAL_DATA/.steps/keep/f"', id="keep")
        )
    )
    result = workspace(plan).run()
    assert result.statuses()["s"] == "passed"
    assert "hi" in result.text
