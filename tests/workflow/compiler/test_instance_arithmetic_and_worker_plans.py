"""count/maxCount/matrix/shards (reference §4.7) and the Plans of workers and service instances."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.workflow import WorkflowError, compile_service_instance, compile_worker, expand_instances
from tests.workflow.compiler.compiler_helpers import CONTEXT, by_name, plan_of


def _count(spec: dict[str, object]) -> int:
    return len(expand_instances(spec))


def test_count_and_max_count_rules() -> None:
    assert _count({}) == 1
    assert _count({"count": 3}) == 3
    assert _count({"count": "1 + 2"}) == 3
    assert _count({"count": 0}) == 0
    assert _count({"count": 5, "maxCount": 2}) == 2
    assert _count({"maxCount": 4}) == 4
    assert _count({"maxCount": 10, "shards": {"f": [1, 2, 3]}}) == 3
    assert _count({"maxCount": 2, "shards": {"f": [1, 2, 3]}}) == 2
    # Testkube quirk: with both and maxCount >= count, maxCount wins
    assert _count({"count": 2, "maxCount": 5}) == 5


def test_negative_or_non_numeric_counts_are_errors() -> None:
    with pytest.raises(WorkflowError, match="lower than zero"):
        expand_instances({"count": -1})
    with pytest.raises(WorkflowError, match="expected an integer"):
        expand_instances({"count": "'many'"})


def test_matrix_is_a_cartesian_product_in_sorted_key_order() -> None:
    instances = expand_instances(
        {"matrix": {"os": ["linux", "mac"], "browser": ["chrome", "firefox", "safari"]}}
    )
    combos = [(i["matrix"]["browser"], i["matrix"]["os"]) for i in instances]
    assert combos == [
        ("chrome", "linux"),
        ("chrome", "mac"),
        ("firefox", "linux"),
        ("firefox", "mac"),
        ("safari", "linux"),
        ("safari", "mac"),
    ]
    assert [i["matrixIndex"] for i in instances] == list(range(6))
    assert {i["matrixCount"] for i in instances} == {6}
    assert instances[3]["matrix.os"] == "mac"


def test_shards_split_contiguously_with_the_remainder_first() -> None:
    instances = expand_instances({"count": 3, "shards": {"files": ["a", "b", "c", "d", "e", "f", "g"]}})
    assert [i["shard"]["files"] for i in instances] == [["a", "b", "c"], ["d", "e"], ["f", "g"]]
    assert [i["shardIndex"] for i in instances] == [0, 1, 2]
    more = expand_instances({"count": 4, "shards": {"f": ["a", "b"]}})
    assert [i["shard"]["f"] for i in more] == [["a"], ["b"], [], []]


def test_shards_times_matrix() -> None:
    instances = expand_instances({"count": 2, "shards": {"f": [1, 2, 3]}, "matrix": {"v": ["x", "y"]}})
    assert len(instances) == 4
    assert [
        (i["index"], i["shardIndex"], i["matrixIndex"], i["matrix"]["v"], i["shard"]["f"]) for i in instances
    ] == [(0, 0, 0, "x", [1, 2]), (1, 1, 0, "x", [3]), (2, 0, 1, "y", [1, 2]), (3, 1, 1, "y", [3])]
    assert {i["count"] for i in instances} == {4}


def test_dynamic_lists_are_expressions() -> None:
    instances = expand_instances({"matrix": {"n": "split(value)"}}, {"value": "a,b,c"})
    assert [i["matrix"]["n"] for i in instances] == ["a", "b", "c"]
    assert len(expand_instances({"shards": {"e": []}, "count": 2})) == 2


def test_worker_plan_binds_instance_variables_and_global_env() -> None:
    plan = plan_of(
        {
            "config": {"workers": {"type": "integer", "default": "3"}},
            "container": {
                "image": "alpine",
                "env": [{"name": "G", "value": "g", "global": True}, {"name": "L", "value": "l"}],
            },
            "steps": [
                {
                    "name": "p",
                    "parallel": {
                        "count": "config.workers",
                        "description": "worker {{ index }}",
                        "matrix": {"browser": ["chrome", "firefox"]},
                        "run": {
                            "image": "k6",
                            "args": ["{{ index }}/{{ count }}", "{{ matrix.browser }}", "{{ execution.id }}"],
                        },
                    },
                }
            ],
        }
    )
    ref = by_name(plan, "p").ref
    assert by_name(plan, "p").spec["parallel"]["count"] == 3
    worker = compile_worker(plan, ref, 4)
    run = next(s for s in worker.stages.values() if s.kind == "run")
    assert run.args == ["4/6", "firefox", CONTEXT.id]
    env = {e.name: e.value for e in run.env}
    assert env["G"] == "g"
    assert worker.context["resource_id"] == f"{CONTEXT.id}-{ref}-4"
    with pytest.raises(WorkflowError, match="index 6 does not exist"):
        compile_worker(plan, ref, 6)


def test_service_instance_plan() -> None:
    plan = plan_of(
        {
            "container": {"env": [{"name": "G", "value": "g", "global": True}]},
            "services": {
                "db": {
                    "image": "postgres:16",
                    "count": 2,
                    "shell": "serve {{ index }}",
                    "readinessProbe": {"tcpSocket": {"port": 5432}},
                }
            },
            "steps": [{"shell": "psql -h {{ services.db.0.ip }}"}],
        }
    )
    start = next(s for s in plan.stages.values() if s.kind == "services-start")
    instance = compile_service_instance(plan, start.ref, "db", 1)
    op = next(s for s in instance.stages.values() if s.kind == "shell")
    assert op.shell == "serve 1"
    assert instance.containers[0].image == "postgres:16"
    assert {e.name: e.value for e in op.env}["G"] == "g"
    with pytest.raises(WorkflowError):
        compile_service_instance(plan, start.ref, "nope", 0)


@given(st.lists(st.integers(), max_size=30), st.integers(1, 12))
def test_shards_partition_the_list_in_order(values: list[int], count: int) -> None:
    instances = expand_instances({"count": count, "shards": {"v": values}} if values else {"count": count})
    assert len(instances) == count
    if not values:
        return
    chunks = [i["shard"]["v"] for i in instances]
    assert [x for chunk in chunks for x in chunk] == values
    sizes = [len(c) for c in chunks]
    assert sizes == sorted(sizes, reverse=True) and max(sizes) - min(sizes) <= 1


@given(
    st.dictionaries(
        st.sampled_from("abcd"),
        st.lists(st.integers(), min_size=1, max_size=3, unique=True),
        min_size=1,
        max_size=3,
    )
)
def test_matrix_enumerates_every_combination_once(matrix: dict[str, list[int]]) -> None:
    instances = expand_instances({"matrix": matrix})
    combos = [tuple(i["matrix"][k] for k in sorted(matrix)) for i in instances]
    expected = 1
    for values in matrix.values():
        expected *= len(values)
    assert len(combos) == expected == len(set(combos))
