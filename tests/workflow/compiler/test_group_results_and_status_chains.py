"""Group results are the conjunction of non-optional children (negative: disjunction of negations),
and each stage's status chain lists its earlier non-optional siblings and its ancestors' chains."""

from __future__ import annotations

from tests.workflow.compiler.compiler_helpers import by_name, plan_of


def test_chain_of_nested_steps_lists_earlier_siblings_newest_first() -> None:
    plan = plan_of(
        {
            "steps": [
                {"name": "step1", "shell": "a"},
                {
                    "name": "group1",
                    "steps": [{"name": "step2", "shell": "b"}, {"name": "step3", "shell": "c"}],
                },
                {"name": "step4", "shell": "d"},
            ]
        }
    )
    s1, g1, s2, s3, s4 = (by_name(plan, n).ref for n in ("step1", "group1", "step2", "step3", "step4"))
    assert by_name(plan, "step1").status_chain == "true"
    assert by_name(plan, "group1").status_chain == s1
    assert by_name(plan, "step2").status_chain == s1
    assert by_name(plan, "step3").status_chain == f"{s2}&&{s1}"
    assert by_name(plan, "step4").status_chain == f"{g1}&&{s1}"
    # default condition `passed` is the chain itself
    assert by_name(plan, "step4").condition == f"{g1}&&{s1}"
    assert by_name(plan, "step1").condition == "true"
    assert by_name(plan, "group1").result == f"{s2}&&{s3}"
    assert plan.stages[plan.root].result == f"{s1}&&{g1}&&{s4}"


def test_optional_children_are_left_out_of_results_and_chains() -> None:
    plan = plan_of(
        {
            "steps": [
                {"name": "a", "shell": "x", "optional": True},
                {"name": "b", "shell": "y"},
                {"name": "c", "shell": "z"},
            ]
        }
    )
    b = by_name(plan, "b").ref
    assert by_name(plan, "b").condition == "true"
    assert by_name(plan, "c").condition == b
    assert plan.stages[plan.root].result == f"{b}&&{by_name(plan, 'c').ref}"
    assert by_name(plan, "a").optional


def test_negative_group_fails_unless_a_child_failed() -> None:
    plan = plan_of(
        {
            "steps": [
                {
                    "name": "neg",
                    "negative": True,
                    "steps": [{"name": "x", "shell": "exit 1"}, {"name": "y", "shell": "exit 0"}],
                }
            ]
        }
    )
    x, y = by_name(plan, "x").ref, by_name(plan, "y").ref
    assert by_name(plan, "neg").result == f"!{x}||!{y}"
    assert by_name(plan, "neg").negative


def test_empty_results() -> None:
    plan = plan_of(
        {
            "steps": [
                {
                    "name": "all-optional",
                    "steps": [
                        {"name": "o1", "shell": "a", "optional": True},
                        {"name": "o2", "shell": "b", "optional": True},
                    ],
                },
                {
                    "name": "neg-optional",
                    "negative": True,
                    "steps": [
                        {"name": "o3", "shell": "a", "optional": True},
                        {"name": "o4", "shell": "b", "optional": True},
                    ],
                },
            ]
        }
    )
    assert by_name(plan, "all-optional").result == "true"
    assert by_name(plan, "neg-optional").result == "false"


def test_single_operation_steps_collapse_into_one_stage() -> None:
    plan = plan_of({"steps": [{"name": "only", "shell": "echo"}]})
    only = by_name(plan, "only")
    assert only.kind == "shell" and only.category == "Run shell command"
    assert plan.stages[plan.root].children == [only.ref]
    assert [n.name for n in plan.signature] == ["only"]


def test_unnamed_groups_are_lifted_in_the_signature() -> None:
    plan = plan_of(
        {
            "steps": [
                {"timeout": "1m", "steps": [{"name": "a", "shell": "x"}, {"name": "b", "shell": "y"}]},
                {"name": "named", "steps": [{"name": "c", "shell": "x"}, {"name": "d", "shell": "y"}]},
            ]
        }
    )
    top = [(n.name, [c.name for c in n.children]) for n in plan.signature]
    assert top == [("a", []), ("b", []), ("named", ["c", "d"])]
    lifted = [s for s in plan.stages.values() if s.kind == "group" and s.virtual]
    assert len(lifted) == 1 and lifted[0].children == [by_name(plan, "a").ref, by_name(plan, "b").ref]


def test_wrapper_steps_holding_only_sub_steps_are_flattened() -> None:
    plan = plan_of({"steps": [{"steps": [{"name": "a", "shell": "x"}, {"name": "b", "shell": "y"}]}]})
    assert plan.stages[plan.root].children == [by_name(plan, "a").ref, by_name(plan, "b").ref]


def test_step_with_several_operations_is_a_group_in_preset_order() -> None:
    plan = plan_of(
        {
            "steps": [
                {
                    "name": "all",
                    "delay": "5s",
                    "content": {
                        "git": {"uri": "https://example.com/r.git"},
                        "tarball": [{"url": "http://x/t.tgz", "path": "/data/t"}],
                    },
                    "setup": [{"name": "setup-1", "shell": "s"}],
                    "run": {"image": "alpine", "command": ["echo"]},
                    "shell": "echo shell",
                    "steps": [{"name": "sub", "shell": "sub"}],
                    "artifacts": {"paths": ["*.xml"]},
                }
            ]
        }
    )
    group = by_name(plan, "all")
    kinds = [(plan.stages[r].kind, plan.stages[r].name or plan.stages[r].category) for r in group.children]
    assert kinds == [
        ("delay", "Delay: 5s"),
        ("git", "Clone Git repository"),
        ("tarball", "Fetch tarball"),
        ("shell", "setup-1"),
        ("run", "Run"),
        ("shell", "Run shell command"),
        ("shell", "sub"),
        ("artifacts", "Upload artifacts"),
    ]
    assert plan.stages[group.children[0]].spec == {"duration": "5s", "ms": 5000}
    assert plan.stages[group.children[0]].command == ["sleep", "5"]
