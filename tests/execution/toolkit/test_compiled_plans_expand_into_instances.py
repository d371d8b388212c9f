from __future__ import annotations

from typing import Any

from shoal.execution._toolkit._subplans import CompilerInstances
from shoal.workflow import compile_workflow
from tests.execution.toolkit.toolkit_helpers import Execution

DOC: dict[str, Any] = {
    "apiVersion": "testworkflows.testkube.io/v1",
    "kind": "TestWorkflow",
    "metadata": {"name": "p"},
    "spec": {
        "services": {"db": {"count": 2, "shell": "sleep 1", "description": "db {{ index }}"}},
        "steps": [
            {
                "name": "par",
                "parallel": {
                    "matrix": {"b": ["x", "y"]},
                    "description": "{{ matrix.b }} browser",
                    "fetch": [{"from": "/data/out", "to": "/data/r/{{ matrix.b }}"}],
                    "shell": "echo {{ matrix.b }}",
                },
            }
        ],
    },
}


def _ref(plan: Any, kind: str) -> str:
    return next(r for r, s in plan.stages.items() if s.kind == kind)


def test_workers_of_a_compiled_parallel_stage_are_bound_to_their_matrix(execution: Execution) -> None:
    plan = compile_workflow(DOC).plan
    run, _ = execution.load_plan(plan, "parallel", _ref(plan, "parallel"))
    workers = CompilerInstances().workers(run)
    assert [w.description for w in workers] == ["x browser", "y browser"]
    assert [w.spec["fetch"][0]["to"] for w in workers] == ["/data/r/x", "/data/r/y"]
    assert all(w.plan.stages for w in workers)


def test_service_instances_of_a_compiled_plan(execution: Execution) -> None:
    plan = compile_workflow(DOC).plan
    run, _ = execution.load_plan(plan, "services-start", _ref(plan, "services-start"))
    instances = CompilerInstances().services(run, "db")
    assert [i.description for i in instances] == ["db 0", "db 1"]


def test_stop_stage_of_a_compiled_plan_finds_its_start_stage(execution: Execution) -> None:
    from shoal.execution._toolkit._services import _start_ref

    plan = compile_workflow(DOC).plan
    run, _ = execution.load_plan(plan, "services-stop", _ref(plan, "services-stop"))
    assert _start_ref(run) == _ref(plan, "services-start")
    assert run.spec["services"] == ["db"]
