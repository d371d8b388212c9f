"""Dashboard benchmark: server time per page with 10,000 executions and 100 agents in the store.

The store is filled directly (20 workflows, 100 agents over 25 clusters, executions spread over the
last 7 days with their aggregation facts, a few running and queued), then every page is requested
in-process (httpx over ASGI, so no socket or browser time is counted) with a signed-in session.
Prints JSON lines {"bench": "dashboard", "name": "page_<name>_ms", "value", "unit": "ms", "runs"}: the
median wall time of the runs after a warm-up (target: under 200 ms per page), and ``page_<name>_cpu_ms``,
the process CPU time of the same requests, which a busy machine inflates less.
With ``--engine postgres`` the store is a fresh PostgreSQL database (127.0.0.1:5432) and the figure names
end in ``_postgres``.
Usage: .venv/bin/python bench/dashboard.py [--executions N] [--agents N] [--runs N] [--engine sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402

from shoal.server import ServerSettings, ServerState, create_app  # noqa: E402
from shoal.server.dashboard._routes import rollups_of  # noqa: E402
from shoal.store import new_execution_id, new_id  # noqa: E402
from shoal.store._metrics import rebuild_fact_days  # noqa: E402
from shoal.store._models import Agent, Execution, ExecutionFact, LatestFact, Resource, StepFact  # noqa: E402
from tests.pg import fresh_database, postgres_available  # noqa: E402

STEPS = ["checkout", "build", "unit", "integration", "e2e"]


def emit(name: str, value: float, runs: int) -> None:
    line = {"bench": "dashboard", "name": name, "value": round(value, 2), "unit": "ms", "runs": runs}
    print(json.dumps(line), flush=True)


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


async def fill(state: ServerState, executions: int, agents: int) -> tuple[str, str]:
    """Returns (an execution id of a finished run, a workflow name)."""
    rng = random.Random(7)
    store = state.store
    env = await store.get_environment(state.organization.id, "default")
    now = datetime.now(UTC)
    workflows = [f"suite-{i:02d}" for i in range(20)]
    clusters = [f"pr-{1000 + i}" for i in range(25)]
    agent_rows = []
    for i in range(agents):
        agent_rows.append(
            {
                "id": new_id(),
                "env_id": env.id,
                "name": f"agent-{i:03d}",
                "labels": {"cluster": clusters[i % len(clusters)], "kind": "kubernetes"},
                "capabilities": ["local"],
                "version": "0.1.0",
                "status": "online" if i % 5 else "offline",
                "max_concurrent": 4,
                "connection": 1,
                "last_seen": now - timedelta(seconds=rng.randint(0, 30)),
                "created_at": now - timedelta(days=7),
            }
        )
    resources = []
    for rev, name in enumerate(workflows, start=1):
        doc = {
            "apiVersion": "testworkflows.testkube.io/v1",
            "kind": "TestWorkflow",
            "metadata": {"name": name},
            "spec": {"steps": [{"name": s, "shell": "true"} for s in STEPS]},
        }
        resources.append(
            {
                "id": new_id(),
                "env_id": env.id,
                "kind": "TestWorkflow",
                "name": name,
                "revision": rev,
                "generation": 1,
                "document": doc,
                "labels": {},
                "deleted": False,
                "created_at": now,
                "updated_at": now,
            }
        )
    numbers: dict[str, int] = {}
    ex_rows: list[dict[str, Any]] = []
    facts: list[dict[str, Any]] = []
    step_facts: list[dict[str, Any]] = []
    sample = ""
    for i in range(executions):
        wf = workflows[i % len(workflows)]
        numbers[wf] = numbers.get(wf, 0) + 1
        agent = agent_rows[rng.randrange(len(agent_rows))]
        scheduled = now - timedelta(seconds=(executions - i) * (7 * 86400 / executions))
        ex_id = new_execution_id()[:8] + f"{i:016x}"
        live = i >= executions - 50
        outcome = "passed" if rng.random() > 0.15 else "failed"
        status = ("running" if i % 2 else "queued") if live else outcome
        refs = [f"r{k}{i % 7}" for k in range(len(STEPS))]
        duration = rng.randint(20_000, 300_000)
        steps: dict[str, Any] = {}
        failing = rng.randrange(len(STEPS)) if status == "failed" else -1
        for k, ref in enumerate(refs):
            st = "failed" if k == failing else ("skipped" if failing >= 0 and k > failing else "passed")
            start = scheduled + timedelta(milliseconds=duration * k / len(STEPS))
            steps[ref] = {
                "status": st if not live else "running",
                "startedAt": _iso(start),
                "finishedAt": _iso(start + timedelta(milliseconds=duration / len(STEPS))),
            }
        finished = None if live else scheduled + timedelta(milliseconds=duration)
        ex_rows.append(
            {
                "id": ex_id,
                "env_id": env.id,
                "workflow_name": wf,
                "number": numbers[wf],
                "name": f"{wf}-{numbers[wf]}",
                "group_id": ex_id,
                "status": status,
                "queue_reason": "no online agent matches cluster=pr-9999" if status == "queued" else None,
                "agent_id": None if status == "queued" else agent["id"],
                "agent_name": None if status == "queued" else agent["name"],
                "agent_labels": {} if status == "queued" else agent["labels"],
                "target": {},
                "config": {},
                "tags": {},
                "running_context": {},
                "parent_ids": [],
                "created_by": {},
                "workflow": resources[i % len(workflows)]["document"],
                "signature": [{"ref": r, "name": s} for r, s in zip(refs, STEPS, strict=True)],
                "result": {"status": status, "steps": steps, "startedAt": _iso(scheduled)},
                "output": [],
                "reports": [],
                "scheduled_at": scheduled,
                "started_at": scheduled,
                "finished_at": finished,
                "status_at": finished or scheduled,
                "duration_ms": None if live else duration,
                "last_seq": 0,
                "compacted": False,
            }
        )
        if not live:
            sample = ex_id if status == "failed" or not sample else sample
            facts.append(
                {
                    "execution_id": ex_id,
                    "env_id": env.id,
                    "workflow_name": wf,
                    "number": numbers[wf],
                    "group_id": ex_id,
                    "status": status,
                    "agent_name": agent["name"],
                    "agent_labels": agent["labels"],
                    "scheduled_at": scheduled,
                    "finished_at": finished,
                    "duration_ms": duration,
                }
            )
            if failing >= 0:
                step_facts.append(
                    {
                        "execution_id": ex_id,
                        "ref": refs[failing],
                        "env_id": env.id,
                        "workflow_name": wf,
                        "name": STEPS[failing],
                        "status": "failed",
                        "agent_name": agent["name"],
                        "agent_labels": agent["labels"],
                        "scheduled_at": scheduled,
                    }
                )
    # What ingest keeps beside each fact: the newest run per agent and workflow, and the day rollup.
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for fact in facts:
        latest[(fact["workflow_name"], fact["agent_name"])] = {
            k: fact[k]
            for k in ("env_id", "workflow_name", "agent_name", "agent_labels", "execution_id", "status")
        } | {"scheduled_at": fact["scheduled_at"]}
    async with store.session() as s:
        await s.execute(insert(Agent), agent_rows)
        await s.execute(insert(Resource), resources)
        for start in range(0, len(ex_rows), 1000):
            await s.execute(insert(Execution), ex_rows[start : start + 1000])
        for start in range(0, len(facts), 2000):
            await s.execute(insert(ExecutionFact), facts[start : start + 2000])
        await s.execute(insert(LatestFact), list(latest.values()))
        if step_facts:
            await s.execute(insert(StepFact), step_facts)
    async with store.session() as s:
        await rebuild_fact_days(s, env.id)
    if store.dialect == "postgresql":
        async with store.engine.connect() as conn:  # as autovacuum would after a bulk load
            await conn.execute(text("ANALYZE"))
            await conn.commit()
    return sample, workflows[3]


async def measure(
    client: httpx.AsyncClient, path: str, runs: int, before: Callable[[], None] = lambda: None
) -> tuple[float, float]:
    """Median wall time and median CPU time (all threads of this process: the server's work) in ms."""
    r = await client.get(path)  # warm-up
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    wall, cpu = [], []
    for _ in range(runs):
        before()
        t0, c0 = time.perf_counter(), time.process_time()
        r = await client.get(path)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        assert r.status_code == 200
    return statistics.median(wall), statistics.median(cpu)


async def main(executions: int, agents: int, runs: int, engine: str) -> None:
    if engine == "postgres":
        if not postgres_available():
            print(json.dumps({"bench": "dashboard", "skipped": "PostgreSQL: no server on 127.0.0.1:5432"}))
            return
        async with fresh_database() as url:
            await measure_pages(executions, agents, runs, url, "_postgres")
    else:
        await measure_pages(executions, agents, runs, "", "")


async def measure_pages(executions: int, agents: int, runs: int, database_url: str, suffix: str) -> None:
    with tempfile.TemporaryDirectory(prefix="shoal-bench-dashboard-") as tmp:
        # Background loops (agent sweeper, retention) would run on the same event loop: keep them out
        # of the page timings.
        settings = ServerSettings(
            home=Path(tmp),
            database_url=database_url,
            print_admin_token=False,
            sweep_interval_s=3600,
            prune_interval_s=3600,
        )
        app = create_app(settings)
        state = await ServerState.start(settings)
        app.state.shoal = state
        try:
            sample, workflow = await fill(state, executions, agents)
            _t, token = await state.store.create_token(state.organization.id, None, "admin")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                form = await client.get("/dashboard/login")
                m = re.search(r'name="csrf" value="([^"]+)"', form.text)
                assert m is not None
                await client.post("/dashboard/login", data={"token": token, "csrf": m.group(1)})
                pages = {
                    "login": "/dashboard/login",
                    "environments": "/dashboard/envs",
                    "environment": "/dashboard/envs/default",
                    "workflows": "/dashboard/envs/default/workflows",
                    "workflows_30d_by_agent": "/dashboard/envs/default/workflows?window=30d&by=agent",
                    "workflow": f"/dashboard/envs/default/workflows/{workflow}",
                    "execution": f"/dashboard/envs/default/executions/{sample}",
                    "clusters": "/dashboard/envs/default/clusters",
                }
                for name, path in pages.items():
                    wall, cpu = await measure(client, path, runs)
                    emit(f"page_{name}{suffix}_ms", wall, runs)
                    emit(f"page_{name}{suffix}_cpu_ms", cpu, runs)
                # The workflows page reuses its aggregation while no run finished: also time it cold.
                cache = rollups_of(app.state)
                for name in ("workflows", "workflows_30d_by_agent"):
                    wall, cpu = await measure(client, pages[name], runs, cache.clear)
                    emit(f"page_{name}_cold{suffix}_ms", wall, runs)
                    emit(f"page_{name}_cold{suffix}_cpu_ms", cpu, runs)
        finally:
            await state.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--engine",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="names end in _postgres for PostgreSQL",
    )
    args = parser.parse_args()
    asyncio.run(main(args.executions, args.agents, args.runs, args.engine))
