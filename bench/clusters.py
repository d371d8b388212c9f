"""Ephemeral-cluster benchmarks: claim latency from a warm pool vs a cold `local` provision (request →
Ready, through the API of a real server with its in-process controller, agents as real processes), and
reconcile throughput of one controller with the no-op provisioner (requests handled per second).

Prints JSON lines {"bench": "clusters", "name", "value", "unit", "runs"}. Never part of the tests.
Usage: .venv/bin/python bench/clusters.py [--quick] [--only claim,reconcile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.fernet import Fernet  # noqa: E402

from shoal.client import Client  # noqa: E402
from shoal.clusters import ClusterController, ControllerSettings, MemoryProvisioner  # noqa: E402
from shoal.server._sealing import Sealer  # noqa: E402
from shoal.store import Store  # noqa: E402
from shoal.store._clusters import ClusterStore  # noqa: E402
from tests.harness import server_in_thread, wait_until  # noqa: E402
from tests.pg import fresh_database, postgres_available  # noqa: E402

POOL = """
apiVersion: shoal.dev/v1
kind: EphemeralClusterPool
metadata: {name: warm}
spec: {classRef: %s, size: %d, maxSize: %d}
---
apiVersion: shoal.dev/v1
kind: EphemeralClusterClass
metadata: {name: bare}
spec: {provisioner: local, installAgent: false}
"""


def emit(name: str, value: float, unit: str, runs: int = 1) -> None:
    print(
        json.dumps({"bench": "clusters", "name": name, "value": round(value, 3), "unit": unit, "runs": runs})
    )
    sys.stdout.flush()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ready_ms(c: Client, body: dict[str, Any]) -> float:
    """Request → Ready as a client sees it, polling every 5 ms (a back-off would round the figure up)."""
    t0 = time.perf_counter()
    name = c._json("POST", "/v1/clusters", json=body)["metadata"]["name"]
    while c._json("GET", f"/v1/clusters/{name}")["phase"] != "Ready":
        if time.perf_counter() - t0 > 120:
            raise AssertionError(f"{name} not Ready after 120 s")
        time.sleep(0.005)
    elapsed = (time.perf_counter() - t0) * 1000
    c._json("POST", f"/v1/clusters/{name}/teardown")
    return elapsed


def bench_claims(runs: int) -> None:
    os.environ["SHOAL_CLUSTERS_POLL_S"] = "0.02"
    with tempfile.TemporaryDirectory() as tmp, server_in_thread(Path(tmp) / "home") as srv, srv.client() as c:
        for cls, label in (("local", ""), ("bare", "_bare")):
            c._json(
                "POST",
                "/v1/clusters/apply",
                content=(POOL % (cls, 2, runs + 4)).encode(),
                headers={"Content-Type": "application/yaml"},
            )

            def spares() -> bool:
                pool = c._json("GET", "/v1/cluster-pools/warm")
                return bool(
                    pool["status"].get("ready", 0) >= 2 and pool["status"].get("provisioning", 1) == 0
                )

            warm: list[float] = []
            cold: list[float] = []
            for _ in range(runs):
                wait_until(spares, 120, "two ready spares")
                warm.append(_ready_ms(c, {"poolRef": "warm", "classRef": cls}))
                cold.append(_ready_ms(c, {"classRef": cls}))
            emit(f"claim_warm{label}_p50_ms", statistics.median(warm), "ms", runs)
            emit(f"claim_warm{label}_p95_ms", pct(warm, 0.95), "ms", runs)
            emit(f"provision_cold{label}_p50_ms", statistics.median(cold), "ms", runs)
            emit(f"provision_cold{label}_p95_ms", pct(cold, 0.95), "ms", runs)
            emit(f"claim_speedup{label}", statistics.median(cold) / statistics.median(warm), "ratio", runs)
            c._json("DELETE", "/v1/cluster-pools/warm")
            # the next class starts on a quiet controller: every cluster of this one is gone
            wait_until(lambda: not c._json("GET", "/v1/clusters?members=true&finished=false"), 120, "teardown")


async def reconcile_throughput(url: str, n: int) -> tuple[float, float]:
    """Requests/s: n requests from creation to Ready (5 passes each: record, admit, ensure, credentials,
    ready) by one controller with the no-op provisioner; the figure counts requests, not passes."""
    store = await Store.open(url)
    try:
        org = await store.ensure_organization("default")
        env = await store.create_environment(org.id, "default", exist_ok=True)
        cs = ClusterStore(store)
        await cs.apply_class(env.id, "noop", {"provisioner": "noop"})
        for i in range(n):
            await cs.create_cluster(env.id, f"c{i}", "noop", {"classRef": "noop"})
        ctl = ClusterController(
            store,
            Sealer(Fernet.generate_key()),
            {"noop": MemoryProvisioner()},
            ControllerSettings(controller_id="bench", server_url="http://x"),
        )
        t0 = time.perf_counter()
        while True:
            done = await ctl.reconcile_due(limit=n)
            ready = await cs.count_in_phases(env.id, "noop", ("Ready",))
            if ready == n:
                break
            if not done:
                await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - t0
        return n / elapsed, ctl.passes / elapsed
    finally:
        await store.close()


def bench_reconcile(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rate, passes = asyncio.run(reconcile_throughput(f"sqlite+aiosqlite:///{tmp}/bench.db", n))
    emit("reconcile_per_s", rate, "requests/s", n)
    emit("reconcile_passes_per_s", passes, "passes/s", n)
    if postgres_available():

        async def pg() -> tuple[float, float]:
            async with fresh_database() as url:
                return await reconcile_throughput(url, n)

        rate, passes = asyncio.run(pg())
        emit("reconcile_per_s_postgres", rate, "requests/s", n)
        emit("reconcile_passes_per_s_postgres", passes, "passes/s", n)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="claim,reconcile")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if "reconcile" in only:
        bench_reconcile(100 if args.quick else 500)
    if "claim" in only:
        bench_claims(3 if args.quick else 10)


if __name__ == "__main__":
    main()
