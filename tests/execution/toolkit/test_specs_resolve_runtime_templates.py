from __future__ import annotations

import json

from shoal.execution._toolkit._execute import run_execute
from tests.execution.toolkit.test_execute_runs_children_and_fails_on_any_failure import FakeChildren
from tests.execution.toolkit.toolkit_helpers import Execution


def test_artifact_paths_use_env_and_glob_at_run_time(execution: Execution) -> None:
    (execution.data / "out").mkdir()
    (execution.data / "out" / "a.txt").write_text("a")
    res = execution.run("artifacts", {"paths": ["{{ env.DIR }}/*.txt"]}, env={"DIR": "out"})
    assert res.code == 0, res.output
    assert [a["name"] for a in res.named("artifact")] == ["out/a.txt"]


def test_file_function_reads_from_the_working_dir(execution: Execution) -> None:
    (execution.data / "which").write_text("keep.log\n")
    (execution.data / "keep.log").write_text("k")
    (execution.data / "drop.log").write_text("d")
    res = execution.run("artifacts", {"paths": ['{{ trim(file("which")) }}']})
    assert res.code == 0, res.output
    assert [a["name"] for a in res.named("artifact")] == ["keep.log"]


def test_published_services_and_step_outputs_resolve(execution: Execution) -> None:
    state = execution.shoal_dir / "state"
    (state / "outputs" / "build").mkdir(parents=True)
    (state / "outputs" / "build" / "version").write_text("1.2.3\n")
    (state / "services.json").write_text(json.dumps({"db": [{"ip": "127.9.0.1", "port": 5432}]}))
    spec = {
        "workflows": [
            {
                "name": "child",
                "config": {"host": "{{ services.db.0.ip }}", "v": "{{ step.build.outputs.version }}"},
            }
        ]
    }
    children = FakeChildren()
    res = execution.call(run_execute, "execute", spec, children)
    assert res.code == 0, res.output
    assert children.requests[0].config == {"host": "127.9.0.1", "v": "1.2.3"}


def test_an_unset_env_var_is_empty(execution: Execution) -> None:
    (execution.data / "x").write_text("x")
    res = execution.run("artifacts", {"paths": ["{{ env.UNSET_VAR }}x"]})
    assert res.code == 0, res.output
    assert [a["name"] for a in res.named("artifact")] == ["x"]


def test_an_unknown_name_fails_the_stage_with_the_expression(execution: Execution) -> None:
    res = execution.run("artifacts", {"paths": ["{{ nothing.here }}/x"]})
    assert res.code == 1
    assert "nothing.here" in res.text
