from __future__ import annotations

from pathlib import Path

from shoal.execution._toolkit._parallel import run_parallel
from tests.execution.toolkit.fake_subplans import ScriptInstances, ShellRunner
from tests.execution.toolkit.toolkit_helpers import Execution


def test_all_workers_pass_and_logs_are_prefixed(execution: Execution) -> None:
    source = ScriptInstances(scripts=["echo hello 0", "echo hello 1", "echo hello 2"])
    res = execution.call(run_parallel, "parallel", {}, source, ShellRunner())
    assert res.code == 0, res.output
    for i in range(3):
        assert f"[worker {i}] hello {i}" in res.text
    finals = [m for m in res.named("parallel") if m["status"] != "running"]
    assert sorted((m["index"], m["status"]) for m in finals) == [(0, "passed"), (1, "passed"), (2, "passed")]
    assert "3/3 workers passed" in res.text


def test_one_failing_worker_fails_the_stage(execution: Execution) -> None:
    source = ScriptInstances(scripts=["true", "exit 3", "true"])
    res = execution.call(run_parallel, "parallel", {}, source, ShellRunner())
    assert res.code == 1
    statuses = {m["index"]: m["status"] for m in res.named("parallel") if m["status"] != "running"}
    assert statuses == {0: "passed", 1: "failed", 2: "passed"}


def test_fail_fast_aborts_the_other_workers(execution: Execution) -> None:
    # Worker 1 fails once worker 0 is surely running; worker 0 would otherwise wait (almost) forever.
    scripts = [
        "touch $DATA/../../started0; while true; do sleep 0.01; done",
        "while [ ! -e $DATA/../../started0 ]; do sleep 0.01; done; exit 1",
        "true",
    ]
    source = ScriptInstances(scripts=scripts)
    res = execution.call(
        run_parallel, "parallel", {"failFast": True, "parallelism": 2}, source, ShellRunner()
    )
    assert res.code == 1
    statuses = {m["index"]: m["status"] for m in res.named("parallel") if m["status"] != "running"}
    assert statuses == {0: "aborted", 1: "failed", 2: "aborted"}


def test_parallelism_bounds_concurrent_workers(execution: Execution) -> None:
    # Each worker records itself in a shared dir while it runs; with parallelism 2 never more than 2.
    script = (
        "d=$DATA/../../running; mkdir -p $d; touch $d/$$; n=$(ls $d | wc -l); echo $n >> $DATA/../../counts;"
        " sleep 0.05; rm $d/$$"
    )
    source = ScriptInstances(scripts=[script] * 6)
    res = execution.call(run_parallel, "parallel", {"parallelism": 2}, source, ShellRunner())
    assert res.code == 0, res.output
    counts = [int(x) for x in (execution.data.parent / "shoal" / "children" / "counts").read_text().split()]
    assert len(counts) == 6
    assert max(counts) <= 2


def test_transfer_before_and_fetch_after_each_worker(execution: Execution) -> None:
    (execution.data / "repo" / "sub").mkdir(parents=True)
    (execution.data / "repo" / "sub" / "in.txt").write_text("input")
    (execution.data / "repo" / "skip.bin").write_text("x")
    specs = [
        {
            "transfer": [{"from": "/data/repo", "files": ["**/*.txt"]}],
            "fetch": [{"from": "/data/out", "to": f"/data/results/{i}"}],
        }
        for i in range(2)
    ]
    script = "mkdir -p out; cat repo/sub/in.txt > out/r.txt; test ! -e repo/skip.bin"
    source = ScriptInstances(scripts=[script, script], specs=specs)
    res = execution.call(run_parallel, "parallel", {}, source, ShellRunner())
    assert res.code == 0, res.output
    for i in range(2):
        assert (execution.data / "results" / str(i) / "r.txt").read_text() == "input"


def test_logs_condition_decides_which_worker_logs_are_kept(execution: Execution) -> None:
    source = ScriptInstances(scripts=["echo good", "echo bad; exit 1"])
    res = execution.call(run_parallel, "parallel", {"logs": "failed"}, source, ShellRunner())
    assert res.code == 1
    assert [a["name"] for a in res.named("artifact")] == ["logs/rstage/worker-1.log"]
    assert (execution.artifacts / "logs" / "rstage" / "worker-1.log").read_text() == "bad\n"


def test_sensitive_env_flows_into_workers(execution: Execution) -> None:
    run_env = {"SHOAL_SECRET_TOKEN": "hidden-value"}
    source = ScriptInstances(scripts=['test "$SHOAL_SECRET_TOKEN" = hidden-value'])
    run, out = execution.load("parallel", {}, env=run_env)
    run.plan.sensitive_env["SHOAL_SECRET_TOKEN"] = "token"
    assert run_parallel(run, source, ShellRunner()) == 0, out.getvalue()


def test_worker_artifacts_are_reported_under_ref_and_one_based_index(execution: Execution) -> None:
    source = ScriptInstances(scripts=["echo ARTIFACT report.xml", "echo ARTIFACT out/a.txt"])
    res = execution.call(run_parallel, "parallel", {"logs": "never"}, source, ShellRunner())
    assert res.code == 0, res.output
    assert sorted(a["name"] for a in res.named("artifact")) == ["rstage/1/report.xml", "rstage/2/out/a.txt"]


def test_fetch_skips_symlinks_pointing_out_of_the_worker(execution: Execution, tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host only")
    spec = {"fetch": [{"from": "/data/out", "to": "/data/got"}]}
    script = f"mkdir -p out; echo ok > out/fine.txt; ln -s {secret} out/leak.txt"
    source = ScriptInstances(scripts=[script], specs=[spec])
    res = execution.call(run_parallel, "parallel", {}, source, ShellRunner())
    assert res.code == 0, res.output
    assert (execution.data / "got" / "fine.txt").read_text() == "ok\n"
    assert not (execution.data / "got" / "leak.txt").exists()


def test_paused_workers_all_start_together(execution: Execution) -> None:
    source = ScriptInstances(scripts=["true"] * 3, specs=[{"paused": True}] * 3)
    runner = ShellRunner()
    res = execution.call(run_parallel, "parallel", {}, source, runner)
    assert res.code == 0, res.output
    assert runner.events == ["paused"] * 3 + ["started"] * 3


def test_paused_workers_beyond_parallelism_do_not_deadlock(execution: Execution) -> None:
    source = ScriptInstances(scripts=["true"] * 3, specs=[{"paused": True}] * 3)
    runner = ShellRunner()
    res = execution.call(run_parallel, "parallel", {"parallelism": 2}, source, runner)
    assert res.code == 0, res.output
    assert runner.events[:2] == ["paused", "paused"]
    assert runner.events.count("started") == 3


def test_a_worker_that_cannot_start_does_not_hold_paused_workers(execution: Execution) -> None:
    specs = [{"paused": True}, {"paused": True, "transfer": [{"from": "/data/x", "to": "/elsewhere"}]}]
    runner = ShellRunner()
    res = execution.call(
        run_parallel, "parallel", {}, ScriptInstances(scripts=["true"] * 2, specs=specs), runner
    )
    assert res.code == 1
    assert "[worker 1] cannot start" in res.text
    assert runner.events == ["paused", "started"]
