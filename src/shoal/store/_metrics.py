"""Aggregation of a workflow's results across the agents of an environment, from the fact tables.

Per key (an agent label such as ``cluster``, or the agent name): latest status, pass rate, flip rate,
duration percentiles; a daily trend; recent groups; and which steps fail most, on which keys. Counting
and ordering run in SQL (window functions on both engines); percentiles use PostgreSQL's
``percentile_cont`` and are computed from the sorted durations on SQLite.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from shoal.store._models import ExecutionFact, StepFact

PASSING = ("passed",)


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


def _percentile(values: list[int], q: float) -> float | None:
    if not values:
        return None
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return float(values[lo] + (values[hi] - values[lo]) * (pos - lo))


async def workflow_metrics(session: AsyncSession, q: MetricsQuery) -> dict[str, Any]:
    f = ExecutionFact
    key = _key(f, q.by).label("key")
    scope = and_(f.env_id == q.env_id, f.workflow_name == q.workflow, f.scheduled_at >= q.since)
    is_pg = session.get_bind().dialect.name == "postgresql"

    # Per key: counts, and flips through lag() over time.
    ordered = (
        select(
            key,
            f.execution_id,
            f.status,
            f.duration_ms,
            f.scheduled_at,
            func.lag(f.status)
            .over(partition_by=_key(f, q.by), order_by=(f.scheduled_at, f.execution_id))
            .label("prev"),
            func.row_number()
            .over(partition_by=_key(f, q.by), order_by=(f.scheduled_at.desc(), f.execution_id.desc()))
            .label("rn"),
        )
        .where(scope)
        .subquery()
    )
    passed = func.sum(case((ordered.c.status == "passed", 1), else_=0))
    flips = func.sum(
        case((and_(ordered.c.prev.is_not(None), ordered.c.prev != ordered.c.status), 1), else_=0)
    )
    pairs = func.sum(case((ordered.c.prev.is_not(None), 1), else_=0))
    cols: list[Any] = [
        ordered.c.key,
        func.count().label("n"),
        passed.label("passed"),
        flips.label("flips"),
        pairs.label("pairs"),
    ]
    if is_pg:
        cols += [
            func.percentile_cont(0.5).within_group(ordered.c.duration_ms).label("p50"),
            func.percentile_cont(0.95).within_group(ordered.c.duration_ms).label("p95"),
        ]
    rows = (await session.execute(select(*cols).group_by(ordered.c.key))).all()
    latest = {
        r.key: r
        for r in (
            await session.execute(
                select(ordered.c.key, ordered.c.execution_id, ordered.c.status, ordered.c.scheduled_at).where(
                    ordered.c.rn == 1
                )
            )
        ).all()
    }
    durations: dict[str, list[int]] = defaultdict(list)
    if not is_pg:
        for r in (
            await session.execute(
                select(key, f.duration_ms).where(scope, f.duration_ms.is_not(None)).order_by(f.duration_ms)
            )
        ).all():
            durations[r.key].append(int(r.duration_ms))
    out_rows = []
    total_n = total_passed = total_flips = total_pairs = 0
    for r in sorted(rows, key=lambda r: str(r.key)):
        n, p, fl, pr = int(r.n), int(r.passed or 0), int(r.flips or 0), int(r.pairs or 0)
        total_n, total_passed, total_flips, total_pairs = (
            total_n + n,
            total_passed + p,
            total_flips + fl,
            total_pairs + pr,
        )
        last = latest.get(r.key)
        p50 = float(r.p50) if is_pg and r.p50 is not None else _percentile(durations[r.key], 0.5)
        p95 = float(r.p95) if is_pg and r.p95 is not None else _percentile(durations[r.key], 0.95)
        out_rows.append(
            {
                "key": r.key,
                "latestStatus": last.status if last else None,
                "latestExecutionId": last.execution_id if last else None,
                "latestAt": last.scheduled_at.isoformat() if last else None,
                "executions": n,
                "passed": p,
                "failed": n - p,
                "passRate": round(p / n, 4) if n else None,
                "flipRate": round(fl / pr, 4) if pr else 0.0,
                "durationP50Ms": p50,
                "durationP95Ms": p95,
            }
        )

    # Overall percentiles and a daily trend.
    day = func.date(f.scheduled_at) if not is_pg else func.to_char(f.scheduled_at, "YYYY-MM-DD")
    trend_cols: list[Any] = [
        day.label("day"),
        func.count().label("n"),
        func.sum(case((f.status == "passed", 1), else_=0)).label("passed"),
        func.avg(f.duration_ms).label("avg_ms"),
    ]
    trend = [
        {
            "day": str(r.day),
            "executions": int(r.n),
            "passRate": round(int(r.passed or 0) / int(r.n), 4) if r.n else None,
            "durationAvgMs": float(r.avg_ms) if r.avg_ms is not None else None,
        }
        for r in (await session.execute(select(*trend_cols).where(scope).group_by(day).order_by(day))).all()
    ]
    if is_pg:
        overall = (
            await session.execute(
                select(
                    func.percentile_cont(0.5).within_group(f.duration_ms),
                    func.percentile_cont(0.95).within_group(f.duration_ms),
                ).where(scope)
            )
        ).one()
        p50_all = float(overall[0]) if overall[0] is not None else None
        p95_all = float(overall[1]) if overall[1] is not None else None
    else:
        every = sorted(d for values in durations.values() for d in values)
        p50_all, p95_all = _percentile(every, 0.5), _percentile(every, 0.95)

    groups = [
        {
            "groupId": r.group_id,
            "executions": int(r.n),
            "passed": int(r.passed or 0),
            "startedAt": r.first.isoformat(),
        }
        for r in (
            await session.execute(
                select(
                    f.group_id,
                    func.count().label("n"),
                    func.sum(case((f.status == "passed", 1), else_=0)).label("passed"),
                    func.min(f.scheduled_at).label("first"),
                )
                .where(scope)
                .group_by(f.group_id)
                .order_by(func.min(f.scheduled_at).desc())
                .limit(20)
            )
        ).all()
    ]

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
    return {
        "workflow": q.workflow,
        "since": q.since.isoformat(),
        "by": q.by or "agent",
        "totals": {
            "executions": total_n,
            "passed": total_passed,
            "failed": total_n - total_passed,
            "passRate": round(total_passed / total_n, 4) if total_n else None,
            "flipRate": round(total_flips / total_pairs, 4) if total_pairs else 0.0,
            "durationP50Ms": p50_all,
            "durationP95Ms": p95_all,
        },
        "rows": out_rows,
        "trend": trend,
        "groups": groups,
        "steps": sorted(steps.values(), key=lambda e: (-e["failures"], e["name"])),
    }
