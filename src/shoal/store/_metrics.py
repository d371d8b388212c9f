"""Aggregation of a workflow's results across the agents of an environment, from the fact tables.

Per key (an agent label such as ``cluster``, or the agent name): latest status, pass rate, flip rate,
duration percentiles; a daily trend; recent groups; and which steps fail most, on which keys.

Kept cheap at 100,000+ executions by never reading every execution of the window: ``fact_days`` holds
each (UTC day, agent, labels) of a workflow rolled up as facts are written (counts, flips, and the exact
durations), so the whole days of a window are a few rows per agent and day; only the window's first,
partial day is aggregated from ``execution_facts`` (along its (env, workflow, time) index). Percentiles
are computed here from the exact durations, the same way on SQLite and PostgreSQL. The latest status per
key comes from the small ``latest_facts`` table, recent groups from the newest rows only.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, case, delete, func, insert, literal, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.types import NullType

from shoal.store._models import ExecutionFact, FactDay, LatestFact, StepFact

RECENT_ROWS_FOR_GROUPS = 2000
GROUPS_SHOWN = 20
FACT_DAY_KEY = ("env_id", "workflow_name", "day", "agent_name", "labels_digest")
_COUNTS = ("runs", "passed", "flips", "pairs")


@dataclass(frozen=True, slots=True)
class MetricsQuery:
    env_id: str
    workflow: str
    since: datetime
    by: str | None = None  # agent label; None: agent name


# ------------------------------------------------------------------------------------ the day rollup


def labels_digest(labels: Mapping[str, Any] | None) -> str:
    """Identifies a label set in ``fact_days`` (the same labels in any order give the same digest)."""
    text = json.dumps(dict(labels or {}), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def utc_day(ts: datetime) -> date:
    """The UTC day of a timestamp (naive ones, as SQLite returns them, are UTC already)."""
    return (ts.astimezone(UTC) if ts.tzinfo is not None else ts).date()


def fact_day_row(fact: Mapping[Any, Any]) -> dict[str, Any]:
    """What one execution fact (the column values of ``execution_facts``) adds to its ``fact_days`` row."""
    duration = fact.get("duration_ms")
    labels = fact.get("agent_labels") or {}
    return {
        "env_id": fact["env_id"],
        "workflow_name": fact["workflow_name"],
        "day": utc_day(fact["scheduled_at"]),
        "agent_name": fact.get("agent_name") or "",
        "labels_digest": labels_digest(labels),
        "agent_labels": labels,
        "runs": 1,
        "passed": 1 if fact["status"] == "passed" else 0,
        "flips": 1 if fact.get("flipped") else 0,
        "pairs": 1 if fact.get("has_previous") else 0,
        "durations": [] if duration is None else [int(duration)],
    }


def fold_fact_days(facts: Iterable[Mapping[Any, Any]]) -> list[dict[str, Any]]:
    """The ``fact_days`` rows of a set of facts (for a backfill or a rebuild after a bulk load)."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for fact in facts:
        row = fact_day_row(fact)
        key = tuple(row[k] for k in FACT_DAY_KEY)
        have = out.get(key)
        if have is None:
            out[key] = row
            continue
        for column in _COUNTS:
            have[column] += row[column]
        have["durations"] += row["durations"]
    return list(out.values())


async def add_fact_day(session: AsyncSession, fact: Mapping[str, Any]) -> None:
    """Add a newly written fact to its day (call once per fact, in the transaction that inserted it).

    An upsert, so writers on several servers add up instead of overwriting each other.
    """
    row = fact_day_row(fact)
    table: Table = FactDay.__table__  # type: ignore[assignment]
    is_pg = session.get_bind().dialect.name == "postgresql"
    stmt = (postgresql.insert if is_pg else sqlite.insert)(table).values(row)
    new = stmt.excluded
    sets: dict[str, Any] = {c: table.c[c] + new[c] for c in _COUNTS}
    if row["durations"]:
        if is_pg:
            sets["durations"] = table.c.durations.op("||")(new.durations)
        else:
            sets["durations"] = func.json_insert(table.c.durations, "$[#]", row["durations"][0])
    await session.execute(stmt.on_conflict_do_update(index_elements=list(FACT_DAY_KEY), set_=sets))


async def rebuild_fact_days(session: AsyncSession, env_id: str) -> int:
    """Recompute an environment's ``fact_days`` from its facts (after facts were loaded in bulk, bypassing
    ingest). Returns the number of rows written."""
    f = ExecutionFact
    columns = (
        f.env_id,
        f.workflow_name,
        f.scheduled_at,
        f.agent_name,
        f.agent_labels,
        f.status,
        f.flipped,
        f.has_previous,
        f.duration_ms,
    )
    result = await session.execute(select(*columns).where(f.env_id == env_id))
    rows = fold_fact_days(r._mapping for r in result)
    await session.execute(delete(FactDay).where(FactDay.env_id == env_id))
    for start in range(0, len(rows), 2000):
        await session.execute(insert(FactDay), rows[start : start + 2000])
    return len(rows)


# ------------------------------------------------------------------------------------ reading


def _key(table: Any, by: str | None) -> ColumnElement[Any]:
    if by is not None:
        return func.coalesce(table.agent_labels[by].as_string(), literal("(none)"))
    name = func.nullif(table.agent_name, "") if table is FactDay else table.agent_name
    return func.coalesce(name, literal("(none)"))


def _label_key(agent_name: str | None, labels: dict[str, Any] | None, by: str | None) -> str:
    if by is None:
        return agent_name or "(none)"
    value = (labels or {}).get(by)
    return "(none)" if value is None else str(value)


def _percentile(values: Sequence[int], q: float) -> float | None:
    """Linear interpolation between the closest ranks (PostgreSQL's ``percentile_cont``) of sorted values."""
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


def _as_ints(value: Any) -> list[int]:
    """A list of durations as read: a list (a PostgreSQL array, a decoded JSON column), JSON text (an
    aggregate on SQLite) or NULL. Only non-null durations are ever stored or aggregated."""
    if value is None:
        return []
    if isinstance(value, str):
        decoded: list[int] = json.loads(value)
        return decoded
    return value if isinstance(value, list) else list(value)


@dataclass(slots=True)
class _Tally:
    runs: int = 0
    passed: int = 0
    flips: int = 0
    pairs: int = 0
    durations: list[int] = field(default_factory=list)

    def add(self, runs: int, passed: int, flips: int, pairs: int, durations: list[int]) -> None:
        self.runs += runs
        self.passed += passed
        self.flips += flips
        self.pairs += pairs
        self.durations += durations


# (key, day, runs, passed, flips, pairs, durations)
_Part = tuple[str, date, int, int, int, int, list[int]]


async def workflow_metrics(sessions: async_sessionmaker[AsyncSession], q: MetricsQuery) -> dict[str, Any]:
    """The parts are independent queries: run them at once, each on its own connection."""
    if q.since.tzinfo is not None:
        q = MetricsQuery(q.env_id, q.workflow, q.since.astimezone(UTC), q.by)

    async def part(fn: Any) -> Any:
        async with sessions() as session:
            return await fn(session, q)

    whole_days, first_day, latest, groups, steps = await asyncio.gather(
        part(_whole_days), part(_first_day), part(_latest), part(_groups), part(_steps)
    )
    per_key: dict[str, _Tally] = {}
    per_day: dict[date, list[int]] = {}  # runs, passed, sum and number of durations
    for key, day, runs, passed, flips, pairs, durations in [*first_day, *whole_days]:
        per_key.setdefault(key, _Tally()).add(runs, passed, flips, pairs, durations)
        d = per_day.setdefault(day, [0, 0, 0, 0])
        d[0] += runs
        d[1] += passed
        d[2] += sum(durations)
        d[3] += len(durations)

    rows = []
    total = _Tally()
    for key in sorted(per_key):
        t = per_key[key]
        t.durations.sort()
        total.add(t.runs, t.passed, t.flips, t.pairs, t.durations)
        last = latest.get(key)
        rows.append(
            {
                "key": key,
                "latestStatus": last.status if last else None,
                "latestExecutionId": last.execution_id if last else None,
                "latestAt": _iso(last.scheduled_at) if last else None,
                "executions": t.runs,
                "passed": t.passed,
                "failed": t.runs - t.passed,
                "passRate": _rate(t.passed, t.runs),
                "flipRate": _rate(t.flips, t.pairs) or 0.0,
                "durationP50Ms": _percentile(t.durations, 0.5),
                "durationP95Ms": _percentile(t.durations, 0.95),
            }
        )
    total.durations.sort()  # sorted runs, one per key: a merge for timsort
    totals = {
        "executions": total.runs,
        "passed": total.passed,
        "failed": total.runs - total.passed,
        "passRate": _rate(total.passed, total.runs),
        "flipRate": _rate(total.flips, total.pairs) or 0.0,
        "durationP50Ms": _percentile(total.durations, 0.5),
        "durationP95Ms": _percentile(total.durations, 0.95),
    }
    trend = [
        {
            "day": day.isoformat(),
            "executions": runs,
            "passRate": _rate(passed, runs),
            "durationAvgMs": ms / n if n else None,
        }
        for day, (runs, passed, ms, n) in sorted(per_day.items())
    ]
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


async def _whole_days(session: AsyncSession, q: MetricsQuery) -> list[_Part]:
    """The days after the window's first one, from the rollup."""
    d = FactDay
    # The durations as the driver gives them (a list, or JSON text on SQLite), without a per-item pass.
    durations = type_coerce(d.durations, NullType())
    query = select(_key(d, q.by), d.day, d.runs, d.passed, d.flips, d.pairs, durations).where(
        d.env_id == q.env_id, d.workflow_name == q.workflow, d.day > utc_day(q.since)
    )
    return [
        (str(r[0]), r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5]), _as_ints(r[6]))
        for r in (await session.execute(query)).all()
    ]


async def _first_day(session: AsyncSession, q: MetricsQuery) -> list[_Part]:
    """The window's first day, from ``since`` to the next UTC midnight, aggregated from the facts."""
    f = ExecutionFact
    day = utc_day(q.since)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)
    has_duration = f.duration_ms.is_not(None)
    if session.get_bind().dialect.name == "postgresql":
        durations: Any = func.array_agg(f.duration_ms).filter(has_duration)
    else:
        durations = func.json_group_array(f.duration_ms).filter(has_duration)
    key = _key(f, q.by).label("key")
    query = (
        select(
            key,
            func.count(),
            func.sum(case((f.status == "passed", 1), else_=0)),
            func.sum(case((f.flipped, 1), else_=0)),
            func.sum(case((f.has_previous, 1), else_=0)),
            durations,
        )
        .where(_scope(q), f.scheduled_at < end)
        .group_by(key)
    )
    return [
        (str(r[0]), day, int(r[1]), int(r[2] or 0), int(r[3] or 0), int(r[4] or 0), _as_ints(r[5]))
        for r in (await session.execute(query)).all()
    ]


async def _latest(session: AsyncSession, q: MetricsQuery) -> dict[str, LatestFact]:
    latest: dict[str, LatestFact] = {}
    rows = (
        await session.execute(
            select(LatestFact).where(
                LatestFact.env_id == q.env_id,
                LatestFact.workflow_name == q.workflow,
                LatestFact.scheduled_at >= q.since,
            )
        )
    ).scalars()
    for lf in rows:
        k = _label_key(lf.agent_name, lf.agent_labels, q.by)
        if k not in latest or lf.scheduled_at > latest[k].scheduled_at:
            latest[k] = lf
    return latest


async def _groups(session: AsyncSession, q: MetricsQuery) -> list[dict[str, Any]]:
    """The groups (replicated runs) among the newest runs, newest first: aggregated in SQL over the
    newest rows only, along the (env, workflow, time) index."""
    f = ExecutionFact
    recent = (
        select(f.group_id, f.status, f.scheduled_at)
        .where(_scope(q))
        .order_by(f.scheduled_at.desc())
        .limit(RECENT_ROWS_FOR_GROUPS)
        .subquery()
    )
    started = func.min(recent.c.scheduled_at)
    rows: list[Any] = list(
        (
            await session.execute(
                select(
                    recent.c.group_id,
                    func.count(),
                    func.sum(case((recent.c.status == "passed", 1), else_=0)),
                    started,
                )
                .group_by(recent.c.group_id)
                .order_by(started.desc(), func.max(recent.c.scheduled_at).desc(), recent.c.group_id)
                .limit(GROUPS_SHOWN)
            )
        ).all()
    )
    return [
        {"groupId": group_id, "executions": int(n), "passed": int(passed or 0), "startedAt": _iso(at)}
        for group_id, n, passed, at in rows
    ]


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
