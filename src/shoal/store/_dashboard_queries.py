"""Queries only the web dashboard needs: narrow reads for its pages and its one-time sign-in links.

Sign-in links live in the ``tokens`` table as rows of role ``dashboard-link`` (no schema change): the
``hash`` column holds a keyed digest of the link secret (the server's HMAC, so the secret is never a
bearer token), ``expires_at`` bounds it, ``revoked`` flips on first use (compare-and-set), and ``name``
records the token that asked for it, whose rights the browser session then carries.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    case,
    delete,
    func,
    literal,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from shoal.store._models import Agent, Execution, ExecutionFact, Resource, StepFact, Token
from shoal.store._store import ACTIVE_STATUSES, Store, new_id, now

LINK_ROLE = "dashboard-link"
_LINK_NAME = "dashboard link for token "


@dataclass(frozen=True, slots=True)
class StepFailures:
    workflow: str
    ref: str
    name: str
    failures: int


@dataclass(frozen=True, slots=True)
class EnvironmentCounts:
    agents: int = 0
    online: int = 0
    running: int = 0
    queued: int = 0


def _aware(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


async def get_token(store: Store, token_id: str) -> Token | None:
    """A token by id when it is still usable (not revoked, not expired)."""
    async with store.session() as s:
        token = await s.get(Token, token_id)
    if token is None or token.revoked or token.role == LINK_ROLE:
        return None
    expires = _aware(token.expires_at)
    if expires is not None and expires < now():
        return None
    return token


async def create_link(store: Store, creator: Token, digest: str, ttl: timedelta) -> datetime:
    """Store a one-time link (by its keyed digest) acting as ``creator``; returns its expiry."""
    expires = now() + ttl
    async with store.session() as s:
        await s.execute(
            delete(Token).where(Token.role == LINK_ROLE, Token.expires_at < now() - timedelta(hours=1))
        )
        s.add(
            Token(
                id=new_id(),
                org_id=creator.org_id,
                env_id=creator.env_id,
                role=LINK_ROLE,
                name=_LINK_NAME + creator.id,
                hash=digest,
                prefix="link",
                created_at=now(),
                expires_at=expires,
                revoked=False,
            )
        )
    return expires


async def redeem_link(store: Store, digest: str) -> Token | None:
    """Use a link once: the token it acts as, or None (unknown, expired, already used, creator revoked)."""
    async with store.session() as s:
        link = (
            await s.execute(select(Token).where(Token.hash == digest, Token.role == LINK_ROLE))
        ).scalar_one_or_none()
        if link is None or link.revoked:
            return None
        expires = _aware(link.expires_at)
        if expires is None or expires < now():
            return None
        used = await s.execute(
            update(Token).where(Token.id == link.id, Token.revoked.is_(False)).values(revoked=True)
        )
        if not used.rowcount:  # type: ignore[attr-defined]
            return None  # someone else redeemed it in between
        creator_id = link.name[len(_LINK_NAME) :] if link.name.startswith(_LINK_NAME) else ""
    return await get_token(store, creator_id) if creator_id else None


async def environment_counts(store: Store, env_ids: Sequence[str]) -> dict[str, EnvironmentCounts]:
    """Agents (online/total), running and queued executions per environment, in three grouped queries."""
    if not env_ids:
        return {}
    ids = list(env_ids)
    agents: dict[str, list[int]] = {e: [0, 0] for e in ids}
    runs: dict[str, list[int]] = {e: [0, 0] for e in ids}
    async with store.session() as s:
        q = (
            select(Agent.env_id, Agent.status, func.count())
            .where(Agent.env_id.in_(ids))
            .group_by(Agent.env_id, Agent.status)
        )
        for env_id, status, n in (await s.execute(q)).all():
            agents[env_id][0] += int(n)
            if status == "online":
                agents[env_id][1] += int(n)
        statuses = [*ACTIVE_STATUSES, "queued"]
        q2 = (
            select(Execution.env_id, Execution.status, func.count())
            .where(Execution.env_id.in_(ids), Execution.status.in_(statuses))
            .group_by(Execution.env_id, Execution.status)
        )
        for env_id, status, n in (await s.execute(q2)).all():
            runs[env_id][1 if status == "queued" else 0] += int(n)
    return {e: EnvironmentCounts(agents[e][0], agents[e][1], runs[e][0], runs[e][1]) for e in ids}


def _group_key(by: str) -> ColumnElement[Any]:
    f = ExecutionFact
    if by == "agent":
        return func.coalesce(f.agent_name, literal("(no agent)"))
    return func.coalesce(f.agent_labels[by].as_string(), literal(f"(no {by})"))


def _label_filter(label: tuple[str, str] | None) -> list[ColumnElement[bool]]:
    if label is None:
        return []
    key, value = label
    if key == "name":
        return [ExecutionFact.agent_name == value]
    return [ExecutionFact.agent_labels[key].as_string() == value]


@dataclass(slots=True)
class WorkflowRollup:
    """Per workflow over a window: counts, the latest run per group key, the last runs, the median
    duration (only figures: these are cached by the dashboard)."""

    counts: dict[str, tuple[int, int]]  # workflow -> (runs, passed)
    latest: dict[str, list[tuple[str, str, str, datetime]]]  # workflow -> [(key, status, id, at)]
    recent: dict[str, list[tuple[str, str, int | None]]]  # workflow -> [(id, status, ms)], oldest first
    medians: dict[str, float]  # workflow -> median duration (ms) of the runs that have one


async def workflow_rollup(
    store: Store,
    env_id: str,
    since: datetime,
    by: str,
    label: tuple[str, str] | None = None,
    recent: int = 30,
    workflow: str | None = None,
) -> WorkflowRollup:
    """Aggregated in the database, so that a few rows per workflow and key come back, never one per run
    (each row costs more to decode than to aggregate): counts with every duration as one list per
    workflow and the newest run per key (along the (env, time) index that covers them), then each
    workflow's last runs along its (env, workflow, time) index. One connection for the three reads: the
    page runs other reads beside this one, and SQLite's pool keeps five connections (a sixth is opened
    and closed again, which costs more than these queries)."""
    f = ExecutionFact
    labelled = _label_filter(label)
    scope = [f.env_id == env_id, f.scheduled_at >= since, *labelled]
    if workflow:
        scope.append(f.workflow_name == workflow)
    wf = f.workflow_name
    has_ms = f.duration_ms.is_not(None)
    durations = (
        func.array_agg(f.duration_ms)
        if store.dialect == "postgresql"
        else func.json_group_array(f.duration_ms)
    )
    counts_q = (
        select(wf, func.count(), func.sum(case((f.status == "passed", 1), else_=0)), durations.filter(has_ms))
        .where(*scope)
        .group_by(wf)
    )
    key = _group_key(by)
    if store.dialect == "postgresql":
        # A hash join back to each key's newest time: PostgreSQL would sort the text keys for a window.
        newest = (
            select(wf.label("wf"), key.label("k"), func.max(f.scheduled_at).label("at"))
            .where(*scope)
            .group_by(wf, key)
            .subquery()
        )
        latest_q = (
            select(wf, key, f.status, f.execution_id, f.scheduled_at)
            .join(newest, and_(wf == newest.c.wf, f.scheduled_at == newest.c.at, key == newest.c.k))
            .where(*scope)
        )
    else:
        # SQLite does not look up the join's time in the index; instead its documented "bare columns":
        # with a single max() the other columns come from that row. Times are stored as fixed-width
        # text, so time then id is one string to take the max of.
        newest_first = func.max(type_coerce(f.scheduled_at, String) + f.execution_id)
        latest_q = (
            select(wf, key, f.status, f.execution_id, f.scheduled_at, newest_first)
            .where(*scope)
            .group_by(wf, key)
        )

    async with store.engine.connect() as conn:
        counts: list[Any] = list((await conn.execute(counts_q)).all())
        latest: list[Any] = list((await conn.execute(latest_q)).all())
        recent_runs = await _last_runs(conn, scope, sorted(str(r[0]) for r in counts), recent)
    out = WorkflowRollup({}, {}, recent_runs, {})
    for name, n, passed, ms in counts:
        out.counts[name] = (int(n), int(passed or 0))
        median = _median(sorted(_ints(ms)))
        if median is not None:
            out.medians[name] = median
    newest_per_key: dict[str, dict[str, tuple[str, str, Any]]] = defaultdict(dict)
    for name, k, status, ex_id, at, *_ in latest:
        have = newest_per_key[name].get(str(k))
        if have is None or ex_id > have[1]:  # two runs of a key at the very same instant: the larger id
            newest_per_key[name][str(k)] = (status, ex_id, at)
    for name, keyed in newest_per_key.items():
        out.latest[name] = [(k, st, ex_id, _timestamp(at)) for k, (st, ex_id, at) in sorted(keyed.items())]
    return out


async def _last_runs(
    conn: AsyncConnection, scope: list[ColumnElement[bool]], workflows: list[str], limit: int
) -> dict[str, list[tuple[str, str, int | None]]]:
    """The last ``limit`` runs of each workflow, oldest first: one newest-first index walk per workflow
    that stops after ``limit`` rows, in UNION ALLs of at most 100 (SQLite caps compound selects)."""
    f = ExecutionFact
    out: dict[str, list[tuple[Any, str, str, int | None]]] = defaultdict(list)
    for start in range(0, len(workflows), 100):
        parts = [
            select(f.workflow_name, f.execution_id, f.status, f.duration_ms, f.scheduled_at)
            .where(*scope, f.workflow_name == name)
            .order_by(f.scheduled_at.desc(), f.execution_id.desc())
            .limit(limit)
            .subquery()
            .select()
            for name in workflows[start : start + 100]
        ]
        q: Any = parts[0] if len(parts) == 1 else union_all(*parts)
        found: list[Any] = list((await conn.execute(q)).all())
        for name, ex_id, status, ms, at in found:
            out[name].append((at, ex_id, status, None if ms is None else int(ms)))
    return {name: [(ex_id, st, ms) for _at, ex_id, st, ms in sorted(runs)] for name, runs in out.items()}


def _median(values: list[int]) -> float | None:
    if not values:
        return None
    mid = len(values) // 2
    return float(values[mid]) if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _ints(value: Any) -> list[int]:
    """A list aggregated in SQL: a PostgreSQL array, or JSON text from SQLite."""
    if value is None:
        return []
    if isinstance(value, str):
        value = json.loads(value)
    return [int(v) for v in value if v is not None]


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return _aware(value) or value
    text = str(value).replace("Z", "+00:00")
    ts = datetime.fromisoformat(text)
    return _aware(ts) or ts


async def facts_count(store: Store, env_id: str, since: datetime) -> int:
    """Finished executions in a window (answered from the facts index alone): a cheap change marker."""
    f = ExecutionFact
    q = select(func.count()).select_from(f).where(f.env_id == env_id, f.scheduled_at >= since)
    async with store.engine.connect() as conn:
        return int((await conn.execute(q)).scalar_one())


async def workflow_names(store: Store, env_id: str) -> list[str]:
    q = select(Resource.name).where(
        Resource.env_id == env_id, Resource.kind == "TestWorkflow", Resource.deleted.is_(False)
    )
    async with store.engine.connect() as conn:
        return sorted(str(n) for n in (await conn.execute(q)).scalars())


async def agent_label_keys(store: Store, env_id: str) -> list[str]:
    async with store.engine.connect() as conn:
        rows: list[Any] = list(
            (await conn.execute(select(Agent.labels).where(Agent.env_id == env_id))).scalars()
        )
    return sorted({str(k) for labels in rows for k in (labels or {})})


@dataclass(frozen=True, slots=True)
class LiveRun:
    workflow: str
    status: str
    agent_name: str | None
    agent_labels: dict[str, Any]


async def live_runs(store: Store, env_id: str) -> list[LiveRun]:
    """Queued and active executions of an environment, narrow columns only."""
    e = Execution
    q = select(e.workflow_name, e.status, e.agent_name, e.agent_labels).where(
        e.env_id == env_id, e.status.in_([*ACTIVE_STATUSES, "queued"])
    )
    async with store.engine.connect() as conn:
        return [LiveRun(r[0], r[1], r[2], r[3] or {}) for r in (await conn.execute(q)).all()]


async def step_failures(
    store: Store, env_id: str, since: datetime, workflow: str | None = None
) -> list[StepFailures]:
    """How often each step failed per workflow since a time."""
    sf = StepFact
    conds = [sf.env_id == env_id, sf.scheduled_at >= since]
    if workflow:
        conds.append(sf.workflow_name == workflow)
    q = (
        select(sf.workflow_name, sf.ref, sf.name, func.count())
        .where(and_(*conds))
        .group_by(sf.workflow_name, sf.ref, sf.name)
    )
    async with store.session() as s:
        rows = (await s.execute(q)).all()
    return [StepFailures(r[0], r[1], r[2], int(r[3])) for r in rows]


async def group_members(store: Store, env_id: str, group_id: str, limit: int = 50) -> list[Execution]:
    """The executions of one group (a replicated run), in creation order."""
    q = (
        select(Execution)
        .where(Execution.env_id == env_id, Execution.group_id == group_id)
        .order_by(Execution.scheduled_at, Execution.id)
        .limit(limit)
    )
    async with store.session() as s:
        return list((await s.execute(q)).scalars())


__all__ = [
    "LINK_ROLE",
    "EnvironmentCounts",
    "LiveRun",
    "StepFailures",
    "WorkflowRollup",
    "agent_label_keys",
    "create_link",
    "environment_counts",
    "facts_count",
    "get_token",
    "group_members",
    "live_runs",
    "redeem_link",
    "step_failures",
    "workflow_names",
    "workflow_rollup",
]
