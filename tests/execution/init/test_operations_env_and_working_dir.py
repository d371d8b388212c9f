"""Operation kinds (shell, run, delay, pause, toolkit), stage env and working directories."""

from __future__ import annotations

import os
from collections.abc import Callable

from shoal.workflow._plan import EnvVar, Plan

from ._plans import Workspace, build, env, group, op, run, shell

MakeWorkspace = Callable[[Plan], Workspace]


def test_stage_env_is_resolved_in_order_and_exported(workspace: MakeWorkspace) -> None:
    variables = [
        EnvVar("FIRST", "one"),
        EnvVar("SECOND", "{{ env.FIRST }}-two"),
        EnvVar("FROM_OUTSIDE", "{{ env.OUTSIDE }}!"),
        EnvVar("FROM_SECRET", None, value_from={"secretKeyRef": {"name": "s", "key": "k"}}),
        EnvVar("PATH", "/nowhere:{{ env.PATH }}"),
    ]
    script = 'echo "$FIRST|$SECOND|$FROM_OUTSIDE|{{ env.SECOND }}|${FROM_SECRET-unset}"; echo "p=$PATH"'
    plan = build(
        group("root", shell("s", script, env=variables), shell("after", 'echo "after=${FIRST-unset}"'))
    )
    ws = workspace(plan)
    ws.extra_env["OUTSIDE"] = "out side"
    result = ws.run()
    assert result.statuses() == {"s": "passed", "after": "passed", "root": "passed"}
    assert "one|one-two|out side!|one-two|unset" in result.text
    assert "p=/nowhere:" in result.text
    assert "after=unset" in result.text


def test_condition_sees_the_stage_env(workspace: MakeWorkspace) -> None:
    plan = build(
        group(
            "root",
            shell("yes", "echo yes-ran", env=env(MODE="fast"), condition='env.MODE == "fast"'),
            shell("no", "echo no-ran", env=env(MODE="slow"), condition='env.MODE == "fast"'),
        )
    )
    result = workspace(plan).run()
    assert result.statuses() == {"yes": "passed", "no": "skipped", "root": "passed"}


def test_working_dir_is_created_and_used(workspace: MakeWorkspace) -> None:
    plan = build(
        group(
            "root",
            shell("abs", "pwd", working_dir="{{ env.SHOAL_DATA }}/deep/er"),
            run("rel", ["pwd"], working_dir="relative/dir"),
            shell("file", "echo {{ file('note.txt') }}", working_dir="{{ env.SHOAL_DATA }}/deep"),
        )
    )
    ws = workspace(plan)
    (ws.data / "deep").mkdir(parents=True)
    (ws.data / "deep" / "note.txt").write_text("from-file\n")
    result = ws.run()
    assert result.statuses() == {"abs": "passed", "rel": "passed", "file": "passed", "root": "passed"}
    assert f"{ws.data}/deep/er\n" in result.text
    assert f"{ws.root}/relative/dir\n" in result.text
    assert "from-file" in result.text


def test_unusable_working_dir_is_a_step_error(workspace: MakeWorkspace) -> None:
    plan = build(
        group("root", shell("s", "echo never", working_dir="{{ env.SHOAL_DATA }}/afile/sub", negative=True))
    )
    ws = workspace(plan)
    ws.data.mkdir(parents=True)
    (ws.data / "afile").write_text("x")
    result = ws.run()
    assert result.statuses()["s"] == "failed"  # init errors are never inverted
    assert result.values("s", "execution") == [
        {"code": -1, "details": f"cannot create working directory {ws.data}/afile/sub", "iteration": 1}
    ]


def test_delay_and_pause_operations(workspace: MakeWorkspace) -> None:
    plan = build(group("root", op("d", "delay", spec={"ms": 150}), op("p", "pause")))
    result = workspace(plan).run()
    assert result.statuses() == {"d": "passed", "p": "passed", "root": "passed"}
    start, end = result.values("d", "start")[0]["ts"], result.values("d", "end")[0]["ts"]
    assert end - start >= 140


def test_toolkit_stages_are_delegated(workspace: MakeWorkspace) -> None:
    plan = build(
        group(
            "root",
            op("git", "git", env=env(GIT_TOKEN="t")),
            op("art", "artifacts", condition="always"),
        )
    )
    ws = workspace(plan)
    toolkit = ws.root / "toolkit"
    toolkit.write_text('#!/bin/sh\necho "toolkit $1 $2 token=${GIT_TOKEN-none}"\n[ "$1" = git ]\n')
    toolkit.chmod(0o755)
    ws.extra_env["SHOAL_TOOLKIT"] = f"{toolkit}"
    result = ws.run()
    assert "toolkit git git token=t" in result.text
    assert "toolkit artifacts art token=none" in result.text
    assert result.statuses() == {"git": "passed", "art": "failed", "root": "failed"}


def test_missing_toolkit_is_a_clear_error(workspace: MakeWorkspace) -> None:
    plan = build(group("root", op("git", "git")))
    result = workspace(plan).run()
    assert result.values("git", "execution") == [
        {"code": -1, "details": "SHOAL_TOOLKIT is not set", "iteration": 1}
    ]


def test_run_does_not_prefer_busybox_applets(workspace: MakeWorkspace) -> None:
    plan = build(group("root", run("r", ["ls"], ["--version"])))
    result = workspace(plan).run()
    expected = "passed" if os.path.exists("/usr/bin/ls") or os.path.exists("/bin/ls") else "failed"
    assert result.statuses()["r"] == expected
    assert "GNU coreutils" in result.text or expected == "failed"


def test_condition_error_fails_the_stage_and_skips_its_children(workspace: MakeWorkspace) -> None:
    plan = build(
        group(
            "root",
            group("g", shell("a", "echo a"), condition="int(env.NOT_A_NUMBER) > 1", optional=True),
            shell("b", "echo b"),
        )
    )
    ws = workspace(plan)
    ws.extra_env["NOT_A_NUMBER"] = "x"
    result = ws.run()
    assert result.statuses() == {"a": "skipped", "g": "failed", "b": "passed", "root": "passed"}
    assert result.names("g") == ["start", "execution", "end"]
    assert result.values("g", "execution") == [
        {"code": -1, "details": "condition: cannot convert 'x' to a number", "iteration": 1}
    ]


def test_services_published_by_the_toolkit_are_readable(workspace: MakeWorkspace) -> None:
    script = (
        "echo ip={{ services.db.1.ip }} all={{ services.db.*.ip }} none=[{{ services.cache.0.ip }}] "
        'at={{ at(services, "db").0.ip }}'
    )
    plan = build(group("root", shell("s", script)))
    ws = workspace(plan)
    for index, ip in enumerate(["127.0.0.2", "127.0.0.3"]):
        base = ws.dir / "state" / "services" / "db" / str(index)
        base.mkdir(parents=True)
        (base / "ip").write_text(ip)
    result = ws.run()
    assert result.statuses()["s"] == "passed"
    assert "ip=127.0.0.3 all=127.0.0.2,127.0.0.3 none=[] at=127.0.0.2" in result.text
