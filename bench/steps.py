"""Per-step overhead of the local runtime against a bare shell loop, measured in the same run.

A workflow of N trivial shell steps (`true`) runs through LocalRuntime (sandbox, init program, marker
parsing, durable event log); the baseline runs the same N commands as a bare loop that starts one
`busybox sh -c true` per command. Figures (median of several runs after a warm-up):

* ``step_overhead_ms``: slope (ms/step) between a 50-step and a 200-step run, minus the baseline's slope;
  for merged containers (``system.pureByDefault``: every step in one container) and isolated ones
  (``system.isolatedContainers``: one container, so one init program start, per step).
* ``startup_ms``: a 1-step workflow, from ``start()`` to the result (workspace, sandbox, init files).
* ``init_program_per_step_ms`` / ``runtime_overhead_per_step_ms``: the merged slope split into what the
  init program costs run bare and what the runtime (sandbox, parsing, event log) adds to it.
* ``steps_vs_sh_ratio``: 200 steps through shoal / 200 commands through the bare loop.
* ``init_program_cpu_overhead_per_step_ms``: the init program's CPU time per step (user + system of
  it and its processes, slope as above) minus the bare loop's: what the init costs whatever else runs
  on the machine (wall-clock slopes swing with the load of a shared build machine).
"""

from __future__ import annotations

import asyncio
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from shoal.execution import ExecutionJob, LocalRuntime, init_files
from shoal.execution._sandbox import find_busybox
from shoal.workflow import ExecutionContext, compile_workflow

RUNS = 5
SMALL, LARGE = 50, 200


GROUP = 25  # steps per group: the status rules cap an expression's nesting (a 200-term `&&` chain)


def _workflow(steps: int, *, isolated: bool) -> dict[str, Any]:
    shells = [{"name": f"s{i}", "shell": "true"} for i in range(steps)]
    groups = [{"name": f"g{i // GROUP}", "steps": shells[i : i + GROUP]} for i in range(0, steps, GROUP)]
    # Merged: pure steps share one container (one init program); isolated: one container per step
    # (what impure `shell` steps get by default, as on Kubernetes).
    spec: dict[str, Any] = {"steps": groups}
    spec["system"] = {"isolatedContainers": True} if isolated else {"pureByDefault": True}
    return {
        "apiVersion": "testworkflows.testkube.io/v1",
        "kind": "TestWorkflow",
        "metadata": {"name": f"bench-{steps}"},
        "spec": spec,
    }


def _run_workflow(home: Path, steps: int, *, isolated: bool) -> float:
    """Seconds from start() to the final result."""
    context = ExecutionContext()
    compiled = compile_workflow(_workflow(steps, isolated=isolated), {}, context=context)
    runtime = LocalRuntime(home)
    job = ExecutionJob(execution_id=context.id, plan=compiled.plan, secrets=compiled.secrets)

    async def main() -> float:
        began = time.perf_counter()
        handle = await runtime.start(job)
        outcome = await runtime.wait(handle)
        took = time.perf_counter() - began
        if outcome.status != "passed":
            raise SystemExit(f"bench workflow did not pass: {outcome.execution['result']}")
        return took

    took = asyncio.run(main())
    shutil.rmtree(runtime.workspace(context.id).root, ignore_errors=True)
    return took


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_init_only(home: Path, steps: int, cpu: list[float] | None = None) -> float:
    """Seconds the merged workflow's init program takes by itself (no runtime, no sandbox): what the
    runtime adds is the difference. Its CPU seconds are appended to ``cpu``."""
    compiled = compile_workflow(_workflow(steps, isolated=False), {}, context=ExecutionContext())
    folder = Path(tempfile.mkdtemp(dir=home))
    for name, content in init_files(compiled.plan).items():
        (folder / name).write_text(content)
    (folder / "data").mkdir()
    (folder / "outputs").mkdir()
    busybox = find_busybox()
    env = {
        "PATH": "/usr/bin:/bin",
        "SHOAL_DIR": str(folder),
        "SHOAL_BUSYBOX": busybox,
        "SHOAL_DATA": str(folder / "data"),
        "SHOAL_OUTPUTS": str(folder / "outputs"),
    }
    began, used = time.perf_counter(), _children_cpu()
    for container in compiled.plan.containers:
        subprocess.run(
            [busybox, "sh", str(folder / f"c{container.index}.sh")],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    took = time.perf_counter() - began
    if cpu is not None:
        cpu.append(_children_cpu() - used)
    shutil.rmtree(folder, ignore_errors=True)
    return took


def _run_sh_loop(steps: int, cpu: list[float] | None = None) -> float:
    busybox = find_busybox()
    script = f'i=0; while [ $i -lt {steps} ]; do "{busybox}" sh -c true; i=$((i+1)); done'
    began, used = time.perf_counter(), _children_cpu()
    subprocess.run([busybox, "sh", "-c", script], check=True)
    took = time.perf_counter() - began
    if cpu is not None:
        cpu.append(_children_cpu() - used)
    return took


def _median(samples: list[float]) -> float:
    return statistics.median(samples)


def _emit(name: str, value: float, unit: str = "ms", runs: int = RUNS) -> None:
    print(json.dumps({"bench": "steps", "name": name, "value": round(value, 3), "unit": unit, "runs": runs}))
    sys.stdout.flush()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        home = Path(tmp)
        _run_workflow(home, 1, isolated=False)  # warm-up: sandbox probe, imports, page cache
        _run_sh_loop(SMALL)

        sh_cpu: dict[int, list[float]] = {SMALL: [], LARGE: []}
        sh = {n: _median([_run_sh_loop(n, sh_cpu[n]) for _ in range(RUNS)]) for n in (SMALL, LARGE)}
        merged = {
            n: _median([_run_workflow(home, n, isolated=False) for _ in range(RUNS)]) for n in (SMALL, LARGE)
        }
        isolated = {
            n: _median([_run_workflow(home, n, isolated=True) for _ in range(RUNS)]) for n in (SMALL, LARGE)
        }
        init_cpu: dict[int, list[float]] = {SMALL: [], LARGE: []}
        init_only = {
            n: _median([_run_init_only(home, n, init_cpu[n]) for _ in range(RUNS)]) for n in (SMALL, LARGE)
        }
        startup = _median([_run_workflow(home, 1, isolated=False) for _ in range(RUNS)])

    def slope(values: dict[int, float]) -> float:
        return (values[LARGE] - values[SMALL]) / (LARGE - SMALL) * 1000

    _emit("step_overhead_ms", slope(merged) - slope(sh))
    _emit("step_overhead_isolated_ms", slope(isolated) - slope(sh))
    _emit("init_program_per_step_ms", slope(init_only))
    _emit("runtime_overhead_per_step_ms", slope(merged) - slope(init_only))
    _emit("sh_per_command_ms", slope(sh))
    _emit("startup_ms", startup * 1000)
    _emit(f"steps_{LARGE}_merged_ms", merged[LARGE] * 1000)
    _emit(f"steps_{LARGE}_isolated_ms", isolated[LARGE] * 1000)
    _emit(f"sh_loop_{LARGE}_ms", sh[LARGE] * 1000)
    _emit("steps_vs_sh_ratio", merged[LARGE] / sh[LARGE], unit="ratio")
    _emit("isolated_vs_sh_ratio", isolated[LARGE] / sh[LARGE], unit="ratio")
    cpu_slope = {k: slope({n: _median(v[n]) for n in v}) for k, v in (("init", init_cpu), ("sh", sh_cpu))}
    _emit("init_program_cpu_overhead_per_step_ms", cpu_slope["init"] - cpu_slope["sh"])


if __name__ == "__main__":
    main()
