"""Container defaults flow down with the merge rule, and operations are grouped into containers."""

from __future__ import annotations

from shoal.workflow._merge import merge_container
from tests.workflow.compiler.compiler_helpers import by_name, plan_of


def test_child_image_drops_inherited_command_and_args() -> None:
    parent = {"image": "a", "command": ["c"], "args": ["x"]}
    assert merge_container(parent, {"image": "b"}) == {"image": "b"}
    assert merge_container(parent, {"image": "b", "args": ["y"]}) == {"image": "b", "args": ["y"]}
    assert merge_container(parent, {"command": ["d"]}) == {"image": "a", "command": ["d"]}
    assert merge_container(parent, {"args": ["z"]}) == {"image": "a", "command": ["c"], "args": ["z"]}


def test_env_is_deduplicated_last_wins_and_lists_are_appended() -> None:
    parent = {
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "1"}],
        "volumeMounts": [{"name": "v", "mountPath": "/v"}],
        "workingDir": "/a",
        "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}},
        "securityContext": {"runAsUser": 1, "capabilities": {"add": ["NET_ADMIN"]}},
    }
    child = {
        "env": [{"name": "A", "value": "2"}],
        "volumeMounts": [{"name": "w", "mountPath": "/w"}],
        "resources": {"requests": {"memory": "2Gi"}},
        "securityContext": {"runAsGroup": 2, "capabilities": {"add": ["SYS_TIME", "NET_ADMIN"]}},
    }
    merged = merge_container(parent, child)
    assert merged is not None
    assert merged["env"] == [{"name": "B", "value": "1"}, {"name": "A", "value": "2"}]
    assert merged["volumeMounts"] == [{"name": "v", "mountPath": "/v"}, {"name": "w", "mountPath": "/w"}]
    assert merged["workingDir"] == "/a"
    assert merged["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "1Gi"}}
    assert merged["securityContext"] == {
        "runAsUser": 1,
        "runAsGroup": 2,
        "capabilities": {"add": ["NET_ADMIN", "SYS_TIME"]},
    }


def test_defaults_flow_from_spec_to_step_to_run() -> None:
    plan = plan_of(
        {
            "container": {
                "image": "base:1",
                "workingDir": "/data/global",
                "env": [{"name": "G", "value": "g", "global": True}, {"name": "L", "value": "l"}],
            },
            "steps": [
                {"name": "inherits", "shell": "x"},
                {"name": "own-dir", "workingDir": "/data/custom", "shell": "x"},
                {
                    "name": "runs",
                    "run": {"image": "other:2", "env": [{"name": "L", "value": "run"}], "command": ["go"]},
                },
            ],
        }
    )
    inherits, own, runs = by_name(plan, "inherits"), by_name(plan, "own-dir"), by_name(plan, "runs")
    assert inherits.working_dir == "/data/global" and own.working_dir == "/data/custom"
    assert {e.name: (e.value, e.global_) for e in runs.env} == {
        "CI": ("1", False),
        "G": ("g", True),
        "L": ("run", False),
    }
    assert runs.command == ["go"] and runs.args is None
    images = [plan.containers[s.container or 0].image for s in (inherits, own, runs)]
    assert images == ["base:1", "base:1", "other:2"]


def test_impure_steps_get_a_container_each_and_pure_ones_merge() -> None:
    plan = plan_of(
        {
            "container": {"image": "alpine"},
            "steps": [
                {"name": "a", "shell": "x"},
                {"name": "b", "shell": "y"},
                {"name": "p1", "shell": "z", "pure": True},
                {"name": "p2", "shell": "z", "pure": True},
                {"name": "art", "artifacts": {"paths": ["*"]}},
            ],
        }
    )
    containers = [[plan.stages[a.ref].name for a in c.actions if a.op == "exec"] for c in plan.containers]
    assert containers == [["a"], ["b", "p1", "p2", "art"]]
    assert not plan.containers[1].pure


def test_pure_by_default_merges_everything_compatible() -> None:
    plan = plan_of(
        {
            "system": {"pureByDefault": True},
            "container": {"image": "alpine"},
            "steps": [
                {"name": "a", "shell": "x"},
                {"name": "b", "shell": "y"},
                {"name": "c", "run": {"image": "debian"}, "pure": True},
            ],
        }
    )
    containers = [[plan.stages[a.ref].name for a in c.actions if a.op == "exec"] for c in plan.containers]
    assert containers == [["a", "b"], ["c"]]
    assert [c.image for c in plan.containers] == ["alpine", "debian"]
    assert plan.containers[0].pure


def test_isolated_containers_never_merge() -> None:
    plan = plan_of(
        {
            "system": {"pureByDefault": True, "isolatedContainers": True},
            "steps": [{"name": "a", "shell": "x"}, {"name": "b", "shell": "y"}],
        }
    )
    assert len(plan.containers) == 2 and plan.isolated_containers


def test_group_start_and_end_sit_around_their_children() -> None:
    plan = plan_of(
        {
            "container": {"image": "alpine"},
            "steps": [{"name": "g", "steps": [{"name": "a", "shell": "x"}, {"name": "b", "shell": "y"}]}],
        }
    )
    g, a, b = (by_name(plan, n).ref for n in ("g", "a", "b"))
    actions = [(x.op, x.ref) for c in plan.containers for x in c.actions]
    assert actions == [
        ("start", "root"),
        ("start", g),
        ("start", a),
        ("exec", a),
        ("end", a),
        ("start", b),
        ("exec", b),
        ("end", b),
        ("end", g),
        ("end", "root"),
    ]
    assert [(x.op, x.ref) for x in plan.containers[0].actions][-1] == ("end", a)


def test_conflicting_volume_mounts_keep_containers_apart() -> None:
    plan = plan_of(
        {
            "pod": {"volumes": [{"name": "v1", "emptyDir": {}}, {"name": "v2", "emptyDir": {}}]},
            "container": {"image": "alpine"},
            "steps": [
                {
                    "name": "a",
                    "shell": "x",
                    "pure": True,
                    "container": {"volumeMounts": [{"name": "v1", "mountPath": "/m"}]},
                },
                {
                    "name": "b",
                    "shell": "y",
                    "pure": True,
                    "container": {"volumeMounts": [{"name": "v2", "mountPath": "/m"}]},
                },
            ],
        }
    )
    assert len(plan.containers) == 2


def test_volume_mount_of_an_undeclared_volume_fails_resolution() -> None:
    import pytest

    from shoal.workflow import ResolutionError

    with pytest.raises(ResolutionError, match="'ghost'"):
        plan_of(
            {"container": {"volumeMounts": [{"name": "ghost", "mountPath": "/g"}]}, "steps": [{"shell": "x"}]}
        )


def test_content_files_of_every_level_are_collected() -> None:
    plan = plan_of(
        {
            "content": {"files": [{"path": "/etc/a", "content": "{{ workflow.name }}"}]},
            "steps": [
                {
                    "name": "s",
                    "content": {"files": [{"path": "/b", "content": "b", "mode": 493}]},
                    "shell": "cat /b",
                }
            ],
        }
    )
    assert plan.files[1]["ref"] == by_name(plan, "s").ref
    assert plan.files == [
        {"ref": "root", "path": "/etc/a", "content": "wf"},
        {"ref": plan.files[1]["ref"], "path": "/b", "content": "b", "mode": 493},
    ]
