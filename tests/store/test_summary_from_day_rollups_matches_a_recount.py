"""The workflow summary (read from the per-day rollup plus the window's first, partial day) equals a
recount of every fact, on SQLite and PostgreSQL: for windows starting mid-day, at midnight, before and
after all runs; after replays, label changes, retention, a bulk rebuild, and an upgrade of a database
that had facts before the rollup existed."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from shoal.store import Store, new_execution_id
from shoal.store._db import MIGRATIONS_DIR, create_engine
from shoal.store._metrics import rebuild_fact_days
from shoal.store._models import Environment, Execution, ExecutionFact, FactDay, Organization
from tests.pg import SKIP_REASON, fresh_database, postgres_available

NOW = datetime.now(UTC).replace(microsecond=0)
AGENTS = {"a1": {"cluster": "pr-1"}, "a2": {"cluster": "pr-1"}, "a3": {"cluster": "pr-2"}, "a4": {}}


def _percentile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return float(values[lo] + (values[hi] - values[lo]) * (pos - lo))


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


async def recount(store: Store, env_id: str, since: datetime, by: str | None) -> dict[str, Any]:
    """The figures straight from every fact row, the slow and obvious way."""
    f = ExecutionFact
    async with store.session() as s:
        facts = (await s.execute(select(f).where(f.env_id == env_id, f.workflow_name == "smoke"))).scalars()
        rows = [x for x in facts if _aware(x.scheduled_at) >= since]
    per_key: dict[str, list[Any]] = defaultdict(list)
    per_day: dict[str, list[Any]] = defaultdict(list)
    for x in rows:
        key = (x.agent_name or "(none)") if by is None else str((x.agent_labels or {}).get(by, "(none)"))
        per_key[key].append(x)
        per_day[_aware(x.scheduled_at).date().isoformat()].append(x)

    def figures(group: list[Any]) -> dict[str, Any]:
        n = len(group)
        passed = sum(1 for x in group if x.status == "passed")
        pairs = sum(1 for x in group if x.has_previous)
        flips = sum(1 for x in group if x.flipped)
        durations = [int(x.duration_ms) for x in group if x.duration_ms is not None]
        return {
            "executions": n,
            "passed": passed,
            "failed": n - passed,
            "passRate": round(passed / n, 4) if n else None,
            "flipRate": (round(flips / pairs, 4) if pairs else None) or 0.0,
            "durationP50Ms": _percentile(durations, 0.5),
            "durationP95Ms": _percentile(durations, 0.95),
            "avg": sum(durations) / len(durations) if durations else None,
        }

    newest = sorted(rows, key=lambda x: _aware(x.scheduled_at), reverse=True)[:2000]
    groups: dict[str, list[Any]] = defaultdict(list)
    for x in newest:
        groups[x.group_id].append(x)
    by_start = sorted(groups.items(), key=lambda g: min(_aware(x.scheduled_at) for x in g[1]), reverse=True)
    keyed = {k: figures(v) for k, v in per_key.items()}
    days = {d: figures(v) for d, v in per_day.items()}
    totals = figures(rows)
    del totals["avg"]
    return {
        "totals": totals,
        "rows": {k: {f: v[f] for f in v if f != "avg"} for k, v in keyed.items()},
        "trend": [
            {"day": d, "executions": v["executions"], "passRate": v["passRate"], "durationAvgMs": v["avg"]}
            for d, v in sorted(days.items())
        ],
        "groups": [
            (g, len(xs), sum(1 for x in xs if x.status == "passed"), min(_aware(x.scheduled_at) for x in xs))
            for g, xs in by_start[:20]
        ],
    }


def _comparable(metrics: dict[str, Any]) -> dict[str, Any]:
    drop = ("key", "latestStatus", "latestExecutionId", "latestAt")
    return {
        "totals": metrics["totals"],
        "rows": {r["key"]: {k: v for k, v in r.items() if k not in drop} for r in metrics["rows"]},
        "trend": metrics["trend"],
        "groups": [
            (g["groupId"], g["executions"], g["passed"], _aware(datetime.fromisoformat(g["startedAt"])))
            for g in metrics["groups"]
        ],
    }


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 relative (an average may round in another order on PostgreSQL)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return bool(a == b)


async def _env(store: Store) -> str:
    org = await store.ensure_organization("default")
    return (await store.create_environment(org.id, "default", exist_ok=True)).id


async def _finish(
    store: Store,
    env_id: str,
    at: datetime,
    agent: str | None,
    status: str,
    ms: int | None,
    group: str | None = None,
    **labels: str,
) -> Execution:
    ex = await store.create_execution(
        env_id,
        "smoke",
        status=status,
        agent_name=agent,
        agent_labels=labels or dict(AGENTS.get(agent or "", {})),
        group_id=group,
        scheduled_at=at,
        finished_at=at + timedelta(seconds=5),
        duration_ms=ms,
    )
    await store.record_facts(ex, [])
    return ex


async def _fill(store: Store, env_id: str, runs: int = 160) -> list[Execution]:
    rng = random.Random(5)
    out = []
    for i in range(runs):
        at = NOW - timedelta(days=9) + timedelta(minutes=83 * i + rng.randrange(60))
        agent = rng.choice([*AGENTS, None])
        status = "passed" if rng.random() > 0.3 else "failed"
        ms = None if rng.random() < 0.05 else rng.randrange(100, 90_000)
        out.append(await _finish(store, env_id, at, agent, status, ms, f"{i // 3:024x}"))
    return out


def _windows() -> list[datetime]:
    midnight = NOW.replace(hour=0, minute=0, second=0)
    return [
        NOW - timedelta(days=7),
        NOW - timedelta(days=3, hours=5, minutes=17),
        midnight - timedelta(days=2),  # exactly at a day boundary
        NOW - timedelta(days=30),  # before every run
        NOW + timedelta(hours=1),  # after every run
    ]


async def _assert_matches(store: Store, env_id: str) -> None:
    for since in _windows():
        for by in (None, "cluster", "zone"):
            got = _comparable(await store.metrics(env_id, "smoke", since, by))
            want = await recount(store, env_id, since, by)
            assert _close(got, want), (since, by, got, want)


async def test_summary_equals_a_recount_of_every_fact(store: Store) -> None:
    env_id = await _env(store)
    runs = await _fill(store, env_id)
    await _assert_matches(store, env_id)
    # Replayed facts add nothing; retention removes executions but not what they count for.
    for ex in runs[:20]:
        await store.record_facts(ex, [])
    await store.delete_executions([ex.id for ex in runs[:80]])
    await _assert_matches(store, env_id)
    data = await store.metrics(env_id, "smoke", NOW - timedelta(days=30))
    assert data["totals"]["executions"] == len(runs)


async def test_an_agent_whose_labels_change_counts_under_each_label(store: Store) -> None:
    env_id = await _env(store)
    at = NOW - timedelta(hours=1)
    await _finish(store, env_id, at, "a1", "passed", 100, cluster="pr-1")
    await _finish(store, env_id, at + timedelta(minutes=1), "a1", "failed", 300, cluster="pr-9")
    await _finish(store, env_id, at + timedelta(minutes=2), "a1", "passed", 200, cluster="pr-1")
    data = await store.metrics(env_id, "smoke", NOW - timedelta(days=2), "cluster")
    rows = {r["key"]: r for r in data["rows"]}
    assert (rows["pr-1"]["executions"], rows["pr-1"]["durationP50Ms"]) == (2, 150.0)
    assert (rows["pr-9"]["executions"], rows["pr-9"]["passed"]) == (1, 0)
    by_agent = await store.metrics(env_id, "smoke", NOW - timedelta(days=2))
    assert [(r["key"], r["executions"], r["flipRate"]) for r in by_agent["rows"]] == [("a1", 3, 1.0)]
    async with store.session() as s:
        assert len((await s.execute(select(FactDay))).all()) == 2  # one row per label set


async def test_a_rebuild_after_a_bulk_load_gives_the_same_rollup(store: Store) -> None:
    env_id = await _env(store)
    await _fill(store, env_id, runs=60)
    async with store.session() as s:
        before = sorted(_day_rows((await s.execute(select(FactDay))).scalars()))
        await s.execute(delete(FactDay))
    async with store.session() as s:
        written = await rebuild_fact_days(s, env_id)
    async with store.session() as s:
        after = sorted(_day_rows((await s.execute(select(FactDay))).scalars()))
    assert written == len(before) and after == before
    await _assert_matches(store, env_id)


def _day_rows(rows: Any) -> list[tuple[Any, ...]]:
    return [
        (
            r.workflow_name,
            str(r.day),
            r.agent_name,
            r.labels_digest,
            r.runs,
            r.passed,
            r.flips,
            r.pairs,
            sorted(r.durations),
        )
        for r in rows
    ]


def _upgrade_to(connection: Connection, destination: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(cfg)
    with EnvironmentContext(
        cfg,
        script,
        fn=lambda rev, _ctx: script._upgrade_revs(destination, rev),
        destination_rev=destination,
    ) as env:
        env.configure(connection=connection)
        with env.begin_transaction():
            env.run_migrations()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    if not postgres_available():
        pytest.skip(SKIP_REASON)
    async with fresh_database() as url:
        yield url


async def test_upgrading_a_database_with_facts_fills_the_rollup(database_url: str) -> None:
    engine = create_engine(database_url)
    rng = random.Random(11)
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade_to, "0005")
        await conn.execute(insert(Organization).values(id="o1", name="default", created_at=NOW))
        await conn.execute(insert(Environment).values(id="e1", org_id="o1", name="default", created_at=NOW))
        previous: dict[str, str] = {}
        facts = []
        for i in range(120):
            agent = rng.choice(list(AGENTS))
            status = rng.choice(["passed", "passed", "failed"])
            at = NOW - timedelta(days=8) + timedelta(minutes=91 * i)
            facts.append(
                {
                    "execution_id": new_execution_id(),
                    "env_id": "e1",
                    "workflow_name": "smoke",
                    "number": i + 1,
                    "group_id": f"g{i}",
                    "status": status,
                    "agent_name": agent,
                    "agent_labels": AGENTS[agent],
                    "scheduled_at": at,
                    "finished_at": at,
                    "duration_ms": rng.randrange(1, 5000),
                    "has_previous": agent in previous,
                    "flipped": previous.get(agent, status) != status,
                }
            )
            previous[agent] = status
        await conn.execute(insert(ExecutionFact), facts)
    await engine.dispose()
    store = await Store.open(database_url)  # migrates to head: 0006 folds the facts in
    try:
        await _assert_matches(store, "e1")
        async with store.session() as s:
            assert sum(r.runs for r in (await s.execute(select(FactDay))).scalars()) == 120
    finally:
        await store.close()
