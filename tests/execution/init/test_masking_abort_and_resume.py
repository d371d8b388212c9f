"""Masking of sensitive values, abort with SIGTERM, restart after a crash and finalize-aborted."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from shoal.workflow._plan import EnvVar, Plan

from ._plans import Workspace, build, finish, group, read_until, shell, wait_gone

MakeWorkspace = Callable[[Plan], Workspace]


def test_sensitive_values_are_masked_in_logs_and_outputs(workspace: MakeWorkspace) -> None:
    script = (
        'echo "token=$API_TOKEN short=$PIN"; printf "partial $API_TOKEN"; echo; echo "$API_TOKEN" >&2; '
        'echo "$API_TOKEN" > "$SHOAL_OUTPUTS/t"; echo "$STEP_SECRET and $LONGER_SECRET"'
    )
    stage_env = [
        EnvVar("STEP_SECRET", "s3cr3t-step", sensitive=True),
        EnvVar("LONGER_SECRET", "s3cr3t-step-longer"),
    ]
    plan = build(group("root", shell("s", script, id="s", env=stage_env)))
    ws = workspace(plan)
    mask = ws.root / "mask"
    mask.write_text("API_TOKEN\nPIN\nSTEP_SECRET\nLONGER_SECRET\nUNSET_ONE\n")
    ws.extra_env.update({"SHOAL_MASK": str(mask), "API_TOKEN": "hunter2-very-secret", "PIN": "123"})
    result = ws.run()
    assert result.statuses()["s"] == "passed"
    assert "hunter2" not in result.text and "s3cr3t" not in result.text
    assert "token=**** short=123" in result.text
    assert "partial ****\n" in result.text
    assert "**** and ****" in result.text
    assert result.values("s", "output") == [{"t": "****"}]


def test_masking_filter_passes_output_through_when_nothing_is_sensitive(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("s", "echo plain; printf tail")))
    ws = workspace(plan)
    mask = ws.root / "mask"
    mask.write_text("NOT_SET\n")
    ws.extra_env["SHOAL_MASK"] = str(mask)
    result = ws.run()
    assert "plain\ntail" in result.text


@pytest.mark.parametrize("deadline", [None, 60_000], ids=["own-tree", "own-group"])
def test_sigterm_aborts_the_running_step_and_skips_the_rest(
    workspace: MakeWorkspace, deadline: int | None
) -> None:
    script = 'sleep 30 & echo $! > "$SHOAL_DATA/child.pid"; echo started; wait'
    plan = build(
        group(
            "root",
            shell("first", "true"),
            group("g", shell("slow", script, timeout_ms=deadline)),
            shell("later", "echo later"),
        ),
        cuts=["later"],
    )
    ws = workspace(plan)
    ws.data.mkdir(parents=True)
    proc = ws.start(1)
    before = read_until(proc, lambda out: b"started" in out)
    proc.send_signal(signal.SIGTERM)
    result = finish(proc, before)
    assert result.code == 137
    assert result.statuses() == {
        "first": "passed",
        "slow": "aborted",
        "g": "aborted",
        "later": "skipped",
        "root": "aborted",
    }
    (execution,) = result.values("slow", "execution")
    assert execution["details"] == "The execution has been aborted."
    assert wait_gone(int((ws.data / "child.pid").read_text()))
    # the next container has nothing left to do
    again = ws.run(2)
    assert again.markers == [] and again.code == 0


def test_sigterm_while_paused_aborts(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("p", "echo ran", paused=True)))
    ws = workspace(plan)
    proc = ws.start(1)
    before = read_until(proc, lambda out: b"\x03pause\x04" in out)
    proc.send_signal(signal.SIGTERM)
    result = finish(proc, before)
    assert result.code == 137
    assert result.statuses() == {"p": "aborted", "root": "aborted"}
    assert "ran" not in result.text


def test_pause_waits_for_resume_on_the_control_fifo(workspace: MakeWorkspace) -> None:
    plan = build(group("root", group("g", shell("p", "echo ran"), paused=True)))
    ws = workspace(plan)
    proc = ws.start(1)
    before = read_until(proc, lambda out: b"\x03pause\x04" in out)
    assert b"ran" not in before
    (ws.dir / "control").write_text("nonsense\n")
    (ws.dir / "control").write_text("resume\n")
    result = finish(proc, before)
    assert result.code == 0
    assert result.statuses() == {"p": "passed", "g": "passed", "root": "passed"}
    assert [name for ref, name, _ in result.markers if ref == "g"] == ["start", "pause", "resume", "end"]
    assert "ran" in result.text


def test_finalize_aborted_closes_what_a_killed_program_left_open(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("a", "true"), shell("b", "echo started; sleep 30"), shell("c", "true")))
    ws = workspace(plan)
    proc = ws.start(1)
    read_until(proc, lambda out: b"started" in out)
    proc.kill()  # SIGKILL: no trap, the journal says b is running
    proc.wait()
    closed = ws.finalize()
    assert closed.code == 0
    assert closed.statuses() == {"b": "aborted", "c": "skipped", "root": "aborted"}
    assert closed.values("b", "execution") == [
        {"code": -1, "details": "The execution has been aborted.", "iteration": 1}
    ]
    assert ws.finalize().markers == []  # idempotent


def test_restarted_program_does_not_rerun_the_interrupted_step(workspace: MakeWorkspace) -> None:
    plan = build(
        group("root", shell("a", "echo a-ran"), shell("b", "echo started; sleep 30"), shell("c", "true"))
    )
    ws = workspace(plan)
    proc = ws.start(1)
    read_until(proc, lambda out: b"started" in out)
    proc.kill()
    proc.wait()
    again = ws.run(1)
    assert again.code == 137
    assert "a-ran" not in again.text and "started" not in again.text
    assert again.statuses() == {"b": "aborted", "c": "skipped", "root": "aborted"}


def test_rerun_after_a_clean_finish_prints_nothing(workspace: MakeWorkspace) -> None:
    plan = build(group("root", shell("a", "echo a-ran")))
    ws = workspace(plan)
    first = ws.run(1)
    assert first.statuses() == {"a": "passed", "root": "passed"}
    again = ws.run(1)
    assert again.code == 0 and again.markers == [] and "a-ran" not in again.text


def test_sensitive_stage_env_is_masked_without_a_mask_file(workspace: MakeWorkspace) -> None:
    stage_env = [EnvVar("TOKEN", "{{ env.RAW }}-suffix", sensitive=True), EnvVar("PLAIN", "visible-value")]
    script = 'echo "t=$TOKEN p=$PLAIN"; echo "$TOKEN" > "$SHOAL_OUTPUTS/t"'
    plan = build(group("root", shell("s", script, id="s", env=stage_env)))
    ws = workspace(plan)
    ws.extra_env["RAW"] = "abc"
    result = ws.run()
    assert "t=**** p=visible-value" in result.text
    assert "abc-suffix" not in result.text
    assert result.values("s", "output") == [{"t": "****"}]
