"""Control-plane benchmarks: ingest throughput (SQLite, PostgreSQL, two servers), idle agents held by one
server, aggregated summary over 100,000 executions, run-to-first-step latency through server + agent.

Prints JSON lines {"bench": "control_plane", "name", "value", "unit", "runs"}. Never part of the tests.
Usage: .venv/bin/python bench/control_plane.py [--quick] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402

from shoal.client import Client  # noqa: E402
from shoal.protocol import Accepted, Ack, Assignment, EventBatch, Hello, server_message_adapter  # noqa: E402
from tests.harness import start_server_process, wait_until  # noqa: E402
from tests.pg import fresh_database, postgres_available  # noqa: E402

WF = """\
apiVersion: testworkflows.testkube.io/v1
kind: TestWorkflow
metadata: {name: bench}
spec:
  steps:
  - {name: only, shell: "true"}
"""


SUMMARY_RUNS = 10  # a shared 2-CPU machine: the median of ten steadies the figure


def emit(name: str, value: float, unit: str, runs: int = 1) -> None:
    print(
        json.dumps(
            {"bench": "control_plane", "name": name, "value": round(value, 3), "unit": unit, "runs": runs}
        )
    )
    sys.stdout.flush()


class SimAgent:
    """A protocol-level agent: takes assignments and streams synthetic log lines."""

    def __init__(self, url: str, token: str, name: str, lines: int, batch: int = 500) -> None:
        self.url, self.token, self.name, self.lines, self.batch = url, token, name, lines, batch
        self.done: dict[str, float] = {}
        self.streams: list[asyncio.Task[None]] = []
        self.acked: dict[str, int] = {}

    async def run(self, executions: int, ready: asyncio.Event | None = None) -> None:
        ws_url = self.url.replace("http://", "ws://") + "/v1/agent/connect"
        async with connect(
            ws_url, additional_headers={"Authorization": f"Bearer {self.token}"}, max_size=None
        ) as ws:
            await ws.send(
                Hello(name=self.name, labels={"sim": self.name}, max_concurrent=1000).model_dump_json()
            )
            await ws.recv()  # welcome
            if ready is not None:
                ready.set()
            pending: set[str] = set()
            self.progress = asyncio.Event()
            while len(self.done) < executions:
                msg = server_message_adapter.validate_json(await ws.recv())
                if isinstance(msg, Assignment):
                    await ws.send(Accepted(execution_id=msg.execution_id).model_dump_json())
                    pending.add(msg.execution_id)
                    self.streams.append(asyncio.create_task(self._stream(ws, msg.execution_id)))
                elif isinstance(msg, Ack):
                    self.acked[msg.execution_id] = msg.seq
                    self.progress.set()
                    if msg.seq >= self.lines + 4 and msg.execution_id in pending:
                        pending.discard(msg.execution_id)
                        self.done[msg.execution_id] = time.perf_counter()

    async def _stream(self, ws: Any, execution_id: str) -> None:
        ts = int(time.time() * 1000)
        head = [
            {"seq": 1, "ts": ts, "type": "status", "status": "running"},
            {"seq": 2, "ts": ts, "type": "step", "ref": "r", "status": "running"},
        ]
        await ws.send(EventBatch(execution_id=execution_id, events=head).model_dump_json())
        seq = 3
        remaining = self.lines
        while remaining:
            while seq - self.acked.get(execution_id, 0) > 10_000:  # the agent's flow-control window
                self.progress.clear()
                await self.progress.wait()
            n = min(self.batch, remaining)
            events = [
                {"seq": seq + i, "ts": ts, "type": "log", "ref": "r", "line": f"line {seq + i:08d}"}
                for i in range(n)
            ]
            await ws.send(EventBatch(execution_id=execution_id, events=events).model_dump_json())
            seq += n
            remaining -= n
        tail = [
            {"seq": seq, "ts": ts, "type": "step", "ref": "r", "status": "passed", "exit_code": 0},
            {"seq": seq + 1, "ts": ts, "type": "status", "status": "passed"},
        ]
        await ws.send(EventBatch(execution_id=execution_id, events=tail).model_dump_json())


async def ingest(urls: list[str], admin: str, agents: int, per_agent: int, lines: int) -> float:
    """Lines per second stored and acknowledged with ``agents`` simulated agents spread over ``urls``."""
    with Client(urls[0], admin) as c:
        c.apply(WF)
        token = c.create_token("agent", "default")
    sims = [SimAgent(urls[i % len(urls)], token, f"sim-{i}", lines) for i in range(agents)]
    readies = [asyncio.Event() for _ in sims]
    tasks = [asyncio.create_task(s.run(per_agent, r)) for s, r in zip(sims, readies, strict=True)]
    await asyncio.gather(*(r.wait() for r in readies))
    start = time.perf_counter()

    def create() -> None:
        with Client(urls[-1], admin) as c:
            for sim in sims:
                for _ in range(per_agent):
                    c.run("bench", match={"name": [sim.name]})

    await asyncio.to_thread(create)
    await asyncio.wait_for(asyncio.gather(*tasks), 600)
    elapsed = max(max(s.done.values()) for s in sims) - start
    return agents * per_agent * lines / elapsed


def server_env(extra: dict[str, str]) -> dict[str, str]:
    return {"SHOAL_HEARTBEAT_S": "5", **extra}


async def bench_ingest(quick: bool) -> None:
    agents, per_agent, lines = (4, 2, 5000) if quick else (8, 3, 20000)
    with tempfile.TemporaryDirectory() as d:
        srv = start_server_process(Path(d), extra_env=server_env({}))
        try:
            emit(
                "ingest_lines_per_s_sqlite",
                await ingest([srv.url], srv.admin_token, agents, per_agent, lines),
                "lines/s",
            )
        finally:
            srv.terminate()
    if not postgres_available():
        print(
            json.dumps(
                {"bench": "control_plane", "skipped": "PostgreSQL figures: no server on 127.0.0.1:5432"}
            )
        )
        return
    from cryptography.fernet import Fernet

    async with fresh_database() as url:
        env = server_env({"SHOAL_DATABASE_URL": url, "SHOAL_SECRET_KEY": Fernet.generate_key().decode()})
        with tempfile.TemporaryDirectory() as d:
            one_home = Path(d) / "one"
            one_home.mkdir()
            one = start_server_process(one_home, extra_env=env)
            try:
                emit(
                    "ingest_lines_per_s_postgres",
                    await ingest([one.url], one.admin_token, agents, per_agent, lines),
                    "lines/s",
                )
                two_home = Path(d) / "two"
                two_home.mkdir()
                two = start_server_process(two_home, extra_env=env)
                try:
                    value = await ingest([one.url, two.url], one.admin_token, agents, per_agent, lines)
                    emit("ingest_lines_per_s_2_servers", value, "lines/s")
                finally:
                    two.terminate()
            finally:
                one.terminate()


async def bench_idle_agents(quick: bool) -> None:
    count = 200 if quick else 1000
    with tempfile.TemporaryDirectory() as d:
        srv = start_server_process(Path(d), extra_env=server_env({}))
        try:
            with Client(srv.url, srv.admin_token) as c:
                token = c.create_token("agent", "default")
            rss_before = _rss_kb(srv.proc.pid)
            conns = []
            ws_url = srv.url.replace("http://", "ws://") + "/v1/agent/connect"
            for i in range(count):
                ws = await connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"})
                await ws.send(Hello(name=f"idle-{i}").model_dump_json())
                await ws.recv()
                conns.append(ws)
            rss_after = _rss_kb(srv.proc.pid)
            cpu0 = _cpu_s(srv.proc.pid)
            t0 = time.perf_counter()
            for _ in range(2):  # two heartbeat rounds (every agent once each)
                for ws in conns:
                    await ws.send('{"type":"heartbeat"}')
                await asyncio.sleep(5)
            cpu = (_cpu_s(srv.proc.pid) - cpu0) / (time.perf_counter() - t0)
            emit("idle_agents_connected", count, "agents")
            emit("memory_per_idle_agent_kb", (rss_after - rss_before) / count, "KiB")
            emit("server_rss_with_idle_agents_mb", rss_after / 1024, "MiB")
            emit("cpu_share_idle_agents_heartbeat_5s", cpu * 100, "%")
            for ws in conns:
                await ws.close()
        finally:
            srv.terminate()


async def bench_summary(quick: bool) -> None:
    """Aggregated summary query time with 100,000 executions across 200 agents, on PostgreSQL and SQLite.

    The facts are loaded in bulk (not through ingest), then the per-day rollup that ingest keeps is
    rebuilt from them by the store's own code, as ingest would have left it. ``…_first_day_full_ms``:
    the same summary with the window starting just after a midnight inside the data, so that its
    first, partial day (read from the facts themselves, not the rollup) holds a whole day of runs.
    """
    total = 20_000 if quick else 100_000
    name = "summary_20k_ms" if quick else "summary_100k_ms"
    with tempfile.TemporaryDirectory() as d:
        usual, worst = await _summary_ms(f"sqlite+aiosqlite:///{Path(d) / 'shoal.db'}", total)
        emit(f"{name}_sqlite", usual, "ms", SUMMARY_RUNS)
        emit(f"{name.removesuffix('_ms')}_first_day_full_ms_sqlite", worst, "ms", SUMMARY_RUNS)
    if not postgres_available():
        print(json.dumps({"bench": "control_plane", "skipped": "summary_100k_ms: no PostgreSQL"}))
        return
    async with fresh_database() as url:
        usual, worst = await _summary_ms(url, total)
        emit(name, usual, "ms", SUMMARY_RUNS)
        emit(f"{name.removesuffix('_ms')}_first_day_full_ms", worst, "ms", SUMMARY_RUNS)


async def _summary_ms(url: str, total: int) -> tuple[float, float]:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from shoal.store import Store, new_execution_id
    from shoal.store._metrics import rebuild_fact_days
    from shoal.store._models import ExecutionFact, LatestFact

    store = await Store.open(url)
    try:
        org = await store.ensure_organization("default")
        env = await store.create_environment(org.id, "default")
        start = datetime.now(UTC) - timedelta(days=6)
        rows = []
        previous: dict[str, str] = {}
        latest: dict[str, dict[str, object]] = {}
        for i in range(total):
            agent = i % 200
            status = "failed" if (i * 7919) % 10 == 0 else "passed"
            ts = start + timedelta(seconds=i * 5)
            rows.append(
                {
                    "execution_id": new_execution_id()[:16] + f"{i:08x}",
                    "env_id": env.id,
                    "workflow_name": "smoke",
                    "number": i + 1,
                    "group_id": f"{i // 200:024x}",
                    "status": status,
                    "agent_name": f"agent-{agent}",
                    "agent_labels": {"cluster": f"pr-{agent}"},
                    "scheduled_at": ts,
                    "finished_at": ts + timedelta(seconds=30),
                    "duration_ms": 20_000 + (i * 37) % 20_000,
                    "has_previous": f"agent-{agent}" in previous,
                    "flipped": previous.get(f"agent-{agent}", status) != status,
                }
            )
            previous[f"agent-{agent}"] = status
            latest[f"agent-{agent}"] = {
                "env_id": env.id,
                "workflow_name": "smoke",
                "agent_name": f"agent-{agent}",
                "agent_labels": {"cluster": f"pr-{agent}"},
                "execution_id": rows[-1]["execution_id"],
                "status": status,
                "scheduled_at": ts,
            }
        async with store.session() as s:
            for i in range(0, len(rows), 5000):
                await s.execute(ExecutionFact.__table__.insert(), rows[i : i + 5000])
            await s.execute(LatestFact.__table__.insert(), list(latest.values()))
        async with store.session() as s:
            await rebuild_fact_days(s, env.id)
        if store.dialect == "postgresql":
            async with store.engine.connect() as conn:  # as autovacuum would after a bulk load
                await conn.execute(text("ANALYZE"))
                await conn.commit()
        del rows, latest, previous  # the bench's own copies are no part of a server's heap
        gc.collect()
        medians = []
        day_after_start = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), UTC)
        for since in (datetime.now(UTC) - timedelta(days=7), day_after_start + timedelta(minutes=1)):
            times = []
            for _ in range(SUMMARY_RUNS + 1):  # the first is a warm-up
                t0 = time.perf_counter()
                data = await store.metrics(env.id, "smoke", since, "cluster")
                times.append((time.perf_counter() - t0) * 1000)
            assert len(data["rows"]) == 200 and data["totals"]["executions"] <= total
            medians.append(statistics.median(times[1:]))
        return medians[0], medians[1]
    finally:
        await store.close()


async def bench_first_step(quick: bool) -> None:
    """`run` call → first step's start marker stored, through a server process and an agent process."""
    runs = 5 if quick else 15
    with tempfile.TemporaryDirectory() as d:
        srv = start_server_process(Path(d), extra_env=server_env({}))
        agent = None
        try:
            with Client(srv.url, srv.admin_token) as c:
                c.apply(WF)
                token = c.create_token("agent", "default")
                agent = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "shoal",
                        "agent",
                        "--server",
                        srv.url,
                        "--token",
                        token,
                        "--name",
                        "a",
                        "--state-dir",
                        str(Path(d) / "agent"),
                        "--log-level",
                        "warning",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                wait_until(lambda: any(a["status"] == "online" for a in c.agents()), 60, "agent online")
                latencies = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    ex = c.run("bench")[0]
                    for event in c.follow(ex["id"]):
                        if event.get("type") == "step" and event.get("status") == "running":
                            latencies.append((time.perf_counter() - t0) * 1000)
                            break
                    wait_until(
                        lambda i=ex["id"]: c.execution(i)["result"]["status"] in ("passed", "failed"), 60
                    )
            latencies.sort()
            emit("run_to_first_step_p50_ms", statistics.median(latencies), "ms", runs)
            emit(
                "run_to_first_step_p95_ms",
                latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))],
                "ms",
                runs,
            )
        finally:
            if agent is not None:
                agent.terminate()
                agent.wait(20)
            srv.terminate()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


BENCHES = {
    "ingest": bench_ingest,
    "idle": bench_idle_agents,
    "summary": bench_summary,
    "first_step": bench_first_step,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    chosen = [n for n in args.only.split(",") if n] or list(BENCHES)
    for name in chosen:
        try:
            asyncio.run(BENCHES[name](args.quick))
        except Exception as exc:  # a bench that cannot run says so and the others go on
            print(
                json.dumps(
                    {"bench": "control_plane", "failed": name, "error": f"{type(exc).__name__}: {exc}"}
                )
            )


if __name__ == "__main__":
    main()
