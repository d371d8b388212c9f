"""Aggregation of a workflow's results across the agents of an environment, from the fact tables.

Per key (an agent label such as ``cluster``, or the agent name): latest status, pass rate, flip rate,
duration percentiles; a daily trend; recent groups; and which steps fail most, on which keys.

Kept cheap at 100,000+ executions: one GROUP BY scan (the flip of each run against the same agent's
previous run is recorded when the fact is written, so no window over the whole set is needed), the
latest status per key from the small ``latest_facts`` table, percentiles with PostgreSQL's
``percentile_cont`` (computed from sorted durations on SQLite), recent groups from the newest rows only.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shoal.store._models import ExecutionFact, LatestFact, StepFact

RECENT_ROWS_FOR_GROUPS = 2000
GROUPS_SHOWN = 20


@dataclass(frozen=True, slots=True)
class MetricsQuery:
    env_id: str
    workflow: str
    since: datetime
    by: str | None = None  # agent label; None: agent name


def _key(table: Any, by: str | None) -> ColumnElement[Any]:
    if by is None:
        return func.coalesce(table.agent_name, literal("(none)"))
    return func.coalesce(table.agent_labels[by].as_string(), literal("(none)"))


def _label_key(agent_name: str | None, labels: dict[str, Any] | None, by: str | None) -> str:
    if by is None:
        return agent_name or "(none)"
    value = (labels or {}).get(by)
    return "(none)" if value is None else str(value)


def _percentile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return float(values[lo] + (values[hi] - values[lo]) * (pos - lo))


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _scope(q: MetricsQuery) -> ColumnElement[bool]:
    f = ExecutionFact
    return and_(f.env_id == q.env_id, f.workflow_name == q.workflow, f.scheduled_at >= q.since)


async def workflow_metrics(sessions: async_sessionmaker[AsyncSession], q: MetricsQuery) -> dict[str, Any]:
    """The parts are independent queries: run them at once, each on its own connection."""

    async def part(fn: Any) -> Any:
        async with sessions() as session:
            return await fn(session, q)

    per_key, overall, trend, groups, steps = await asyncio.gather(
        part(_per_key), part(_overall_percentiles), part(_trend), part(_groups), part(_steps)
    )
    rows, totals = per_key
    if overall is not None:  # PostgreSQL: the overall percentiles sort in their own query, in parallel
        totals["durationP50Ms"], totals["durationP95Ms"] = overall
    return {
        "workflow": q.workflow,
        "since": q.since.isoformat(),
        "by": q.by or "agent",
        "totals": totals,
        "rows": rows,
        "trend": trend,
        "groups": groups,
        "steps": steps,
    }


async def _per_key(session: AsyncSession, q: MetricsQuery) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    f = ExecutionFact
    is_pg = session.get_bind().dialect.name == "postgresql"
    scope = _scope(q)
    key = _key(f, q.by).label("key")

    cols: list[Any] = [
        key,
        func.count().label("n"),
        func.sum(case((f.status == "passed", 1), else_=0)).label("passed"),
        func.sum(case((f.flipped, 1), else_=0)).label("flips"),
        func.sum(case((f.has_previous, 1), else_=0)).label("pairs"),
    ]
    if is_pg:
        cols += [
            func.percentile_cont(0.5).within_group(f.duration_ms).label("p50"),
            func.percentile_cont(0.95).within_group(f.duration_ms).label("p95"),
        ]
    grouped = select(*cols).where(scope).group_by(key)
    rows = (await session.execute(grouped)).all()

    durations: dict[str, list[int]] = defaultdict(list)
    if not is_pg:
        for r in (
            await session.execute(
                select(key, f.duration_ms).where(scope, f.duration_ms.is_not(None)).order_by(f.duration_ms)
            )
        ).all():
            durations[r.key].append(int(r.duration_ms))

    latest: dict[str, Any] = {}
    latest_rows = (
        await session.execute(
            select(LatestFact).where(
                LatestFact.env_id == q.env_id,
                LatestFact.workflow_name == q.workflow,
                LatestFact.scheduled_at >= q.since,
            )
        )
    ).scalars()
    for lf in latest_rows:
        k = _label_key(lf.agent_name, lf.agent_labels, q.by)
        if k not in latest or lf.scheduled_at > latest[k].scheduled_at:
            latest[k] = lf

    out_rows = []
    totals: dict[str, Any] = {"n": 0, "passed": 0, "flips": 0, "pairs": 0, "p50": None, "p95": None}
    for r in rows:
        n, p, fl, pr = int(r.n), int(r.passed or 0), int(r.flips or 0), int(r.pairs or 0)
        totals["n"] += n
        totals["passed"] += p
        totals["flips"] += fl
        totals["pairs"] += pr
        last = latest.get(r.key)
        out_rows.append(
            {
                "key": r.key,
                "latestStatus": last.status if last else None,
                "latestExecutionId": last.execution_id if last else None,
                "latestAt": _iso(last.scheduled_at) if last else None,
                "executions": n,
                "passed": p,
                "failed": n - p,
                "passRate": _rate(p, n),
                "flipRate": _rate(fl, pr) or 0.0,
                "durationP50Ms": float(r.p50)
                if is_pg and r.p50 is not None
                else _percentile(durations[r.key], 0.5),
                "durationP95Ms": float(r.p95)
                if is_pg and r.p95 is not None
                else _percentile(durations[r.key], 0.95),
            }
        )
    out_rows.sort(key=lambda row: str(row["key"]))
    if not is_pg:
        every = sorted(d for values in durations.values() for d in values)
        totals["p50"], totals["p95"] = _percentile(every, 0.5), _percentile(every, 0.95)
    summary = {
        "executions": totals["n"],
        "passed": totals["passed"],
        "failed": totals["n"] - totals["passed"],
        "passRate": _rate(totals["passed"], totals["n"]),
        "flipRate": _rate(totals["flips"], totals["pairs"]) or 0.0,
        "durationP50Ms": totals["p50"],
        "durationP95Ms": totals["p95"],
    }
    return out_rows, summary


async def _overall_percentiles(
    session: AsyncSession, q: MetricsQuery
) -> tuple[float | None, float | None] | None:
    if session.get_bind().dialect.name != "postgresql":
        return None  # SQLite: computed from the per-key durations
    f = ExecutionFact
    row = (
        await session.execute(
            select(
                func.percentile_cont(0.5).within_group(f.duration_ms),
                func.percentile_cont(0.95).within_group(f.duration_ms),
            ).where(_scope(q))
        )
    ).one()
    return (
        float(row[0]) if row[0] is not None else None,
        float(row[1]) if row[1] is not None else None,
    )


async def _trend(session: AsyncSession, q: MetricsQuery) -> list[dict[str, Any]]:
    f = ExecutionFact
    is_pg = session.get_bind().dialect.name == "postgresql"
    scope = _scope(q)
    day = func.date_trunc("day", f.scheduled_at) if is_pg else func.date(f.scheduled_at)
    return [
        {
            "day": _iso(r.day)[:10] if r.day is not None else None,  # type: ignore[index]
            "executions": int(r.n),
            "passRate": _rate(int(r.passed or 0), int(r.n)),
            "durationAvgMs": float(r.avg_ms) if r.avg_ms is not None else None,
        }
        for r in (
            await session.execute(
                select(
                    day.label("day"),
                    func.count().label("n"),
                    func.sum(case((f.status == "passed", 1), else_=0)).label("passed"),
                    func.avg(f.duration_ms).label("avg_ms"),
                )
                .where(scope)
                .group_by(day)
                .order_by(day)
            )
        ).all()
    ]


async def _groups(session: AsyncSession, q: MetricsQuery) -> list[dict[str, Any]]:
    f = ExecutionFact
    scope = _scope(q)
    recent = (
        await session.execute(
            select(f.group_id, f.status, f.scheduled_at)
            .where(scope)
            .order_by(f.scheduled_at.desc())
            .limit(RECENT_ROWS_FOR_GROUPS)
        )
    ).all()
    group_stats: dict[str, dict[str, Any]] = {}
    for r in recent:
        g = group_stats.setdefault(
            r.group_id, {"groupId": r.group_id, "executions": 0, "passed": 0, "startedAt": r.scheduled_at}
        )
        g["executions"] += 1
        g["passed"] += 1 if r.status == "passed" else 0
        g["startedAt"] = min(g["startedAt"], r.scheduled_at)
    groups = sorted(group_stats.values(), key=lambda g: g["startedAt"], reverse=True)[:GROUPS_SHOWN]
    for g in groups:
        g["startedAt"] = _iso(g["startedAt"])
    return groups


async def _steps(session: AsyncSession, q: MetricsQuery) -> list[dict[str, Any]]:
    s = StepFact
    skey = _key(s, q.by).label("key")
    step_rows = (
        await session.execute(
            select(s.ref, s.name, skey, func.count().label("n"))
            .where(s.env_id == q.env_id, s.workflow_name == q.workflow, s.scheduled_at >= q.since)
            .group_by(s.ref, s.name, skey)
        )
    ).all()
    steps: dict[str, dict[str, Any]] = {}
    for r in step_rows:
        entry = steps.setdefault(r.ref, {"ref": r.ref, "name": r.name, "failures": 0, "by": {}})
        entry["failures"] += int(r.n)
        entry["by"][r.key] = int(r.n)
    return sorted(steps.values(), key=lambda e: (-e["failures"], e["name"]))
