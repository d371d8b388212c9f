"""Kubernetes runtime figures: render time of a 1,000-step workflow, watch-to-event latency in the
stand-in (kubesim), and Kubernetes API calls per execution (constant in the number of steps).

Prints one JSON line per figure (median of several runs after a warm-up):
``render_1000_steps_ms`` (Plan → ConfigMap/Secret/Job, init program included; CPU time),
``configmap_1000_steps_bytes``, ``container_running_to_first_event_ms`` (the stand-in's pod status
says a container runs → its first step event reaches an observer), ``marker_to_event_ms`` (a step's
start marker is printed in the container → its event reaches an observer), ``api_calls_10_steps``,
``api_calls_1000_steps`` (one merged container) and ``api_calls_10_containers`` (isolated steps).
The stand-in runs containers under bubblewrap; without it the stand-in figures are skipped.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from shoal.execution import ExecutionJob  # noqa: E402
from shoal.execution._kubernetes import KubernetesOptions, KubernetesRuntime, render_execution  # noqa: E402
from shoal.workflow import ExecutionContext, compile_workflow  # noqa: E402

RUNS = 5


def emit(name: str, value: float, unit: str, runs: int) -> None:
    print(json.dumps({"bench": "kube", "name": name, "value": round(value, 3), "unit": unit, "runs": runs}),
          flush=True)


GROUP = 20  # steps per group: a flat list of 1,000 steps makes 1,000-term status chains


def workflow(steps: int, *, isolated: bool = False) -> dict[str, Any]:
    system = {"isolatedContainers": True} if isolated else {"pureByDefault": True}
    leaves = [{"name": f"step {i}", "shell": f"echo step {i}"} for i in range(steps)]
    groups = [{"name": f"group {g}", "steps": leaves[g : g + GROUP]} for g in range(0, steps, GROUP)]
    return {
        "apiVersion": "testworkflows.testkube.io/v1",
        "kind": "TestWorkflow",
        "metadata": {"name": f"bench-{steps}"},
        "spec": {"system": system, "steps": groups if steps > GROUP else leaves},
    }


def job_for(steps: int, *, isolated: bool = False) -> ExecutionJob:
    compiled = compile_workflow(workflow(steps, isolated=isolated), context=ExecutionContext())
    return ExecutionJob(execution_id=str(compiled.plan.context["id"]), plan=compiled.plan, secrets=compiled.secrets)


def bench_render() -> None:
    job = job_for(1000)
    options = KubernetesOptions()
    render_execution(job, options)  # warm-up
    times = []
    for _ in range(RUNS):
        start = time.process_time()
        rendered = render_execution(job, options)
        times.append((time.process_time() - start) * 1000)
    emit("render_1000_steps_ms", statistics.median(times), "ms", RUNS)
    size = sum(len(k) + len(v.encode()) for k, v in rendered.config_map["data"].items())
    size += sum(len(k) + len(v) for k, v in rendered.config_map.get("binaryData", {}).items())
    emit("configmap_1000_steps_bytes", size, "bytes", 1)


async def _stand_in() -> None:
    from tests.kubesim import KubeSim
    from tests.kubesim._sandbox import bwrap_usable

    if not bwrap_usable():
        print("bench kube: bubblewrap is not usable here; stand-in figures skipped", file=sys.stderr)
        return
    tmp = Path(tempfile.mkdtemp(prefix="shoal-bench-kube-"))
    options = KubernetesOptions(toolkit=f"{sys.executable} -m shoal.execution._toolkit", kill_grace=1)
    async with KubeSim() as sim:
        runtime = KubernetesRuntime(sim.kubeconfig(tmp / "kubeconfig"), home=tmp / "home", options=options)
        running_at: dict[tuple[str, str], float] = {}

        def on_change(change: Any) -> None:
            obj = change.obj
            if change.rt.kind != "Pod":
                return
            status = obj.get("status") or {}
            for cs in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
                if "running" in (cs.get("state") or {}):
                    running_at.setdefault((obj["metadata"]["name"], cs["name"]), time.time())

        sim.store.subscribe(on_change)
        watch_latency: list[float] = []
        marker_latency: list[float] = []
        isolated = job_for(5, isolated=True)
        for run in range(RUNS + 1):
            job = job_for(5, isolated=True) if run else isolated
            handle = await runtime.start(job)
            first_seen: dict[str, float] = {}
            async for event in runtime.observe(handle):
                now = time.time()
                if event.type == "step" and event.status == "running" and event.ref in job.plan.stages:
                    stage = job.plan.stages[event.ref]
                    if stage.container is not None:
                        first_seen.setdefault(str(stage.container + 1), now)
                        if run:
                            marker_latency.append(now * 1000 - event.ts)
            await runtime.wait(handle)
            if not run:
                continue  # warm-up
            for (pod, container), at in running_at.items():
                if pod.startswith(job.execution_id) and container in first_seen:
                    watch_latency.append((first_seen[container] - at) * 1000)
        emit("container_running_to_first_event_ms", statistics.median(watch_latency), "ms", len(watch_latency))
        emit("marker_to_event_ms", statistics.median(marker_latency), "ms", len(marker_latency))
        for name, job in (("api_calls_10_steps", job_for(10)), ("api_calls_1000_steps", job_for(1000)),
                          ("api_calls_10_containers", job_for(10, isolated=True))):
            sim.reset_calls()
            handle = await runtime.start(job)
            outcome = await runtime.wait(handle)
            assert outcome.status == "passed", outcome.execution["result"]
            calls = sum(sim.calls.values())
            emit(name, calls, "calls", 1)
        await runtime.close()


def main() -> None:
    bench_render()
    asyncio.run(_stand_in())


if __name__ == "__main__":
    main()
