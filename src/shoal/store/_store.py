"""The Store: every query of the control plane, on SQLite and PostgreSQL alike.

Routes and background loops call these methods; nothing else writes SQL. Methods open their own short
transactions, so callers never hold a session across awaits on the network.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shoal.store._db import create_engine, database_url, is_sqlite, migrate, shoal_home
from shoal.store._errors import Conflict, NotFound, StoreError
from shoal.store._metrics import MetricsQuery, add_fact_day, workflow_metrics
from shoal.store._models import (
    Agent,
    Artifact,
    Environment,
    Execution,
    ExecutionEvent,
    ExecutionFact,
    FactDay,
    LatestFact,
    Organization,
    Resource,
    StepFact,
    Token,
    WorkflowCounter,
)
from shoal.store._selectors import LabelSelector

ROLES = ("admin", "editor", "runner", "viewer", "agent")
TERMINAL_STATUSES = ("passed", "failed", "aborted", "canceled")
ACTIVE_STATUSES = (
    "assigned",
    "starting",
    "scheduling",
    "running",
    "pausing",
    "paused",
    "resuming",
    "stopping",
)


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return secrets.token_hex(16)


def new_execution_id() -> str:
    """24 hex chars, time-ordered like a MongoDB ObjectID (4 bytes of seconds + 8 random bytes)."""
    return f"{int(time.time()) & 0xFFFFFFFF:08x}{secrets.token_hex(8)}"


def hash_token(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    workflow: str | None = None
    statuses: Sequence[str] = ()
    agent: str | None = None
    group_id: str | None = None
    parent_id: str | None = None
    tags: dict[str, str] | None = None
    since: datetime | None = None


class Store:
    """Facade over the database engine. Create with :meth:`open` (migrates the schema)."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    @classmethod
    async def open(cls, url: str | None = None, home: Path | None = None) -> Store:
        url = url or database_url(home or shoal_home())
        engine = create_engine(url)
        await migrate(engine)
        return cls(engine, url)

    async def close(self) -> None:
        await self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session, session.begin():
            yield session

    @property
    def _insert_events_stmt(self) -> Any:
        stmt = getattr(self, "_events_stmt", None)
        if stmt is None:
            stmt = self._insert(ExecutionEvent.__table__).on_conflict_do_nothing()
            self._events_stmt = stmt
        return stmt

    def _insert(self, table: Any) -> Any:
        return sqlite.insert(table) if is_sqlite(self.url) else postgresql.insert(table)

    # ------------------------------------------------------------------ organisations & environments

    async def ensure_organization(self, name: str) -> Organization:
        async with self.session() as s:
            org = (
                await s.execute(select(Organization).where(Organization.name == name))
            ).scalar_one_or_none()
            if org is not None:
                return org
        try:
            async with self.session() as s:
                org = Organization(id=new_id(), name=name, created_at=now())
                s.add(org)
            return org
        except IntegrityError:
            return await self.get_organization(name)

    async def get_organization(self, name: str) -> Organization:
        async with self.session() as s:
            org = (
                await s.execute(select(Organization).where(Organization.name == name))
            ).scalar_one_or_none()
        if org is None:
            raise NotFound(f"organisation {name!r} not found")
        return org

    async def get_organization_by_id(self, org_id: str) -> Organization:
        async with self.session() as s:
            org = await s.get(Organization, org_id)
        if org is None:
            raise NotFound(f"organisation {org_id!r} not found")
        return org

    async def create_environment(self, org_id: str, name: str, *, exist_ok: bool = False) -> Environment:
        try:
            async with self.session() as s:
                env = Environment(id=new_id(), org_id=org_id, name=name, revision=0, created_at=now())
                s.add(env)
            return env
        except IntegrityError:
            if exist_ok:
                return await self.get_environment(org_id, name)
            raise Conflict(f"environment {name!r} already exists") from None

    async def get_environment(self, org_id: str, name: str) -> Environment:
        async with self.session() as s:
            env = (
                await s.execute(
                    select(Environment).where(Environment.org_id == org_id, Environment.name == name)
                )
            ).scalar_one_or_none()
        if env is None:
            raise NotFound(f"environment {name!r} not found")
        return env

    async def get_environment_by_id(self, env_id: str) -> Environment:
        async with self.session() as s:
            env = await s.get(Environment, env_id)
        if env is None:
            raise NotFound(f"environment {env_id!r} not found")
        return env

    async def list_environments(self, org_id: str) -> list[Environment]:
        async with self.session() as s:
            rows = await s.execute(
                select(Environment).where(Environment.org_id == org_id).order_by(Environment.name)
            )
            return list(rows.scalars())

    async def all_environments(self) -> list[Environment]:
        async with self.session() as s:
            return list((await s.execute(select(Environment).order_by(Environment.name))).scalars())

    async def update_environment(
        self, env_id: str, *, retain_days: int | object | None = ..., retain_count: int | object | None = ...
    ) -> Environment:
        values: dict[str, Any] = {}
        if retain_days is not ...:
            values["retain_days"] = retain_days
        if retain_count is not ...:
            values["retain_count"] = retain_count
        async with self.session() as s:
            if values:
                await s.execute(update(Environment).where(Environment.id == env_id).values(**values))
            env = await s.get(Environment, env_id)
        if env is None:
            raise NotFound(f"environment {env_id!r} not found")
        return env

    async def delete_environment(self, env_id: str) -> list[str]:
        """Delete an environment and everything in it; returns the ids of its executions (for blobs)."""
        async with self.session() as s:
            ids = list((await s.execute(select(Execution.id).where(Execution.env_id == env_id))).scalars())
            # Explicit deletes keep this correct where foreign-key cascades are off.
            if ids:
                for chunk in _chunks(ids, 500):
                    await s.execute(delete(ExecutionEvent).where(ExecutionEvent.execution_id.in_(chunk)))
                    await s.execute(delete(Artifact).where(Artifact.execution_id.in_(chunk)))
            await s.execute(delete(Execution).where(Execution.env_id == env_id))
            facts = (ExecutionFact, StepFact, LatestFact, FactDay)
            for table in (Agent, Resource, WorkflowCounter, Token, *facts):
                await s.execute(delete(table).where(table.env_id == env_id))
            await s.execute(delete(Environment).where(Environment.id == env_id))
        return ids

    # ------------------------------------------------------------------ tokens

    async def create_token(
        self, org_id: str, env_id: str | None, role: str, name: str = "", expires_at: datetime | None = None
    ) -> tuple[Token, str]:
        if role not in ROLES:
            raise StoreError(f"unknown role {role!r} (expected one of: {', '.join(ROLES)})")
        if role == "agent" and env_id is None:
            raise StoreError("an agent token needs an environment")
        plaintext = "shoal_" + secrets.token_urlsafe(32)
        token = Token(
            id=new_id(),
            org_id=org_id,
            env_id=env_id,
            role=role,
            name=name,
            hash=hash_token(plaintext),
            prefix=plaintext[:12],
            created_at=now(),
            expires_at=expires_at,
            revoked=False,
        )
        async with self.session() as s:
            s.add(token)
        return token, plaintext

    async def authenticate(self, plaintext: str) -> Token | None:
        async with self.session() as s:
            token = (
                await s.execute(select(Token).where(Token.hash == hash_token(plaintext)))
            ).scalar_one_or_none()
        if token is None or token.revoked:
            return None
        if token.expires_at is not None and _aware(token.expires_at) < now():
            return None
        return token

    async def revoke_tokens_named(self, name: str) -> None:
        async with self.session() as s:
            await s.execute(update(Token).where(Token.name == name).values(revoked=True))

    async def revoke_token(self, token_id: str) -> None:
        async with self.session() as s:
            await s.execute(update(Token).where(Token.id == token_id).values(revoked=True))

    # ------------------------------------------------------------------ agents

    async def connect_agent(
        self,
        env_id: str,
        name: str,
        labels: dict[str, str],
        capabilities: list[str],
        version: str,
        server_id: str,
        max_concurrent: int,
    ) -> Agent:
        """Register (or re-register) an agent as online; bumps its connection counter."""
        ts = now()
        stmt = self._insert(Agent).values(
            id=new_id(),
            env_id=env_id,
            name=name,
            labels=labels,
            capabilities=capabilities,
            version=version,
            status="online",
            max_concurrent=max_concurrent,
            server_id=server_id,
            connection=1,
            last_seen=ts,
            connected_at=ts,
            created_at=ts,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["env_id", "name"],
            set_={
                "labels": labels,
                "capabilities": capabilities,
                "version": version,
                "status": "online",
                "max_concurrent": max_concurrent,
                "server_id": server_id,
                "connection": Agent.connection + 1,
                "last_seen": ts,
                "connected_at": ts,
            },
        )
        async with self.session() as s:
            await s.execute(stmt)
            agent = (
                await s.execute(select(Agent).where(Agent.env_id == env_id, Agent.name == name))
            ).scalar_one()
        return agent

    async def touch_agent(self, agent_id: str, connection: int | None = None) -> bool:
        conds = [Agent.id == agent_id]
        if connection is not None:
            conds.append(Agent.connection == connection)
        async with self.session() as s:
            res = await s.execute(update(Agent).where(*conds).values(last_seen=now(), status="online"))
        return bool(res.rowcount)  # type: ignore[attr-defined]

    async def touch_agents(self, agent_ids: Sequence[str]) -> None:
        """Heartbeats of many agents in one statement (the server batches them every second)."""
        if not agent_ids:
            return
        async with self.session() as s:
            for chunk in _chunks(list(agent_ids), 500):
                await s.execute(
                    update(Agent)
                    .where(Agent.id.in_(chunk))
                    .values(last_seen=now(), status="online")
                    .execution_options(synchronize_session=False)
                )

    async def disconnect_agent(self, agent_id: str, connection: int | None = None) -> bool:
        """Mark offline, unless a newer connection of the same agent already replaced this one."""
        conds = [Agent.id == agent_id]
        if connection is not None:
            conds.append(Agent.connection == connection)
        async with self.session() as s:
            res = await s.execute(
                update(Agent).where(*conds).values(status="offline", disconnected_at=now(), server_id=None)
            )
        return bool(res.rowcount)  # type: ignore[attr-defined]

    async def mark_stale_agents_offline(self, older_than: datetime) -> list[Agent]:
        async with self.session() as s:
            rows = list(
                (
                    await s.execute(
                        select(Agent).where(Agent.status == "online", Agent.last_seen < older_than)
                    )
                ).scalars()
            )
            # One statement; the last_seen condition again so an agent that just heartbeated stays online.
            await s.execute(
                update(Agent)
                .where(Agent.status == "online", Agent.last_seen < older_than)
                .values(status="offline", disconnected_at=now(), server_id=None)
                .execution_options(synchronize_session=False)
            )
        return rows

    async def get_agent(self, env_id: str, name: str) -> Agent:
        async with self.session() as s:
            agent = (
                await s.execute(select(Agent).where(Agent.env_id == env_id, Agent.name == name))
            ).scalar_one_or_none()
        if agent is None:
            raise NotFound(f"agent {name!r} not found")
        return agent

    async def get_agent_by_id(self, agent_id: str) -> Agent | None:
        async with self.session() as s:
            return await s.get(Agent, agent_id)

    async def list_agents(self, env_id: str, online_only: bool = False) -> list[Agent]:
        q = select(Agent).where(Agent.env_id == env_id)
        if online_only:
            q = q.where(Agent.status == "online")
        async with self.session() as s:
            return list((await s.execute(q.order_by(Agent.name))).scalars())

    async def delete_agent(self, env_id: str, name: str) -> None:
        async with self.session() as s:
            res = await s.execute(delete(Agent).where(Agent.env_id == env_id, Agent.name == name))
        if not res.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"agent {name!r} not found")

    # ------------------------------------------------------------------ resources

    async def apply_resource(
        self, env_id: str, kind: str, name: str, document: dict[str, Any], labels: dict[str, str]
    ) -> tuple[Resource, bool]:
        """Create or update; returns (resource, changed). Unchanged documents keep their revision."""
        async with self.session() as s:
            env = (
                await s.execute(select(Environment).where(Environment.id == env_id).with_for_update())
            ).scalar_one_or_none()
            if env is None:
                raise NotFound(f"environment {env_id!r} not found")
            res = (
                await s.execute(
                    select(Resource).where(
                        Resource.env_id == env_id, Resource.kind == kind, Resource.name == name
                    )
                )
            ).scalar_one_or_none()
            if res is not None and not res.deleted and res.document == document:
                return res, False
            revision = await self._bump_revision(s, env_id)
            ts = now()
            if res is None:
                res = Resource(
                    id=new_id(),
                    env_id=env_id,
                    kind=kind,
                    name=name,
                    revision=revision,
                    generation=1,
                    document=document,
                    labels=labels,
                    deleted=False,
                    created_at=ts,
                    updated_at=ts,
                )
                s.add(res)
            else:
                res.revision = revision
                res.generation = res.generation + 1
                res.document = document
                res.labels = labels
                res.deleted = False
                res.updated_at = ts
        return res, True

    async def _bump_revision(self, s: AsyncSession, env_id: str) -> int:
        await s.execute(
            update(Environment).where(Environment.id == env_id).values(revision=Environment.revision + 1)
        )
        return int(
            (await s.execute(select(Environment.revision).where(Environment.id == env_id))).scalar_one()
        )

    @staticmethod
    async def _live_resource(s: AsyncSession, env_id: str, kind: str, name: str) -> Resource:
        query = select(Resource).where(
            Resource.env_id == env_id,
            Resource.kind == kind,
            Resource.name == name,
            Resource.deleted.is_(False),
        )
        res = (await s.execute(query)).scalar_one_or_none()
        if res is None:
            raise NotFound(f"{kind} {name!r} not found")
        return res

    async def get_resource(self, env_id: str, kind: str, name: str) -> Resource:
        async with self.session() as s:
            return await self._live_resource(s, env_id, kind, name)

    async def list_resources(
        self, env_id: str, kind: str | None = None, selector: LabelSelector | None = None
    ) -> list[Resource]:
        q = select(Resource).where(Resource.env_id == env_id, Resource.deleted.is_(False))
        if kind:
            q = q.where(Resource.kind == kind)
        async with self.session() as s:
            rows = list((await s.execute(q.order_by(Resource.kind, Resource.name))).scalars())
        if selector is not None:
            rows = [r for r in rows if selector.matches(r.labels)]
        return rows

    async def delete_resource(self, env_id: str, kind: str, name: str) -> None:
        async with self.session() as s:
            res = await self._live_resource(s, env_id, kind, name)
            res.revision = await self._bump_revision(s, env_id)
            res.deleted = True
            res.updated_at = now()

    async def resources_since(self, env_id: str, revision: int) -> tuple[list[Resource], int]:
        """Every resource changed after ``revision`` (tombstones included) and the current revision."""
        async with self.session() as s:
            current = (
                await s.execute(select(Environment.revision).where(Environment.id == env_id))
            ).scalar_one()
            rows = list(
                (
                    await s.execute(
                        select(Resource)
                        .where(Resource.env_id == env_id, Resource.revision > revision)
                        .order_by(Resource.revision)
                    )
                ).scalars()
            )
        return rows, int(current)

    # ------------------------------------------------------------------ executions

    async def next_number(self, s: AsyncSession, env_id: str, workflow: str) -> int:
        stmt = (
            self._insert(WorkflowCounter)
            .values(env_id=env_id, workflow=workflow, last_number=1)
            .on_conflict_do_update(
                index_elements=["env_id", "workflow"],
                set_={"last_number": WorkflowCounter.last_number + 1},
            )
            .returning(WorkflowCounter.last_number)
        )
        return int((await s.execute(stmt)).scalar_one())

    async def reserve_number(self, env_id: str, workflow: str) -> int:
        """Take the next execution number of a workflow (numbers are never reused)."""
        async with self.session() as s:
            return await self.next_number(s, env_id, workflow)

    async def create_execution(
        self, env_id: str, workflow_name: str, number: int | None = None, **fields: Any
    ) -> Execution:
        """Insert a queued execution with the given number, or the next number of its workflow."""
        ts = now()
        async with self.session() as s:
            if number is None:
                number = await self.next_number(s, env_id, workflow_name)
            exe_id = fields.pop("id", None) or new_execution_id()
            ex = Execution(
                id=exe_id,
                env_id=env_id,
                workflow_name=workflow_name,
                number=number,
                name=fields.pop("name", None) or f"{workflow_name}-{number}",
                group_id=fields.pop("group_id", None) or exe_id,
                status=fields.pop("status", "queued"),
                scheduled_at=fields.pop("scheduled_at", ts),
                status_at=ts,
                last_seq=0,
                compacted=False,
                **fields,
            )
            s.add(ex)
        return ex

    async def get_execution(self, execution_id: str, env_id: str | None = None) -> Execution:
        async with self.session() as s:
            ex = await s.get(Execution, execution_id)
        if ex is None or (env_id is not None and ex.env_id != env_id):
            raise NotFound(f"execution {execution_id!r} not found")
        return ex

    def _filtered(self, q: Select[Any], env_id: str, f: ExecutionFilter) -> Select[Any]:
        q = q.where(Execution.env_id == env_id)
        if f.workflow:
            q = q.where(Execution.workflow_name == f.workflow)
        if f.statuses:
            q = q.where(Execution.status.in_(list(f.statuses)))
        if f.agent:
            q = q.where(Execution.agent_name == f.agent)
        if f.group_id:
            q = q.where(Execution.group_id == f.group_id)
        if f.parent_id:
            q = q.where(Execution.parent_id == f.parent_id)
        if f.since:
            q = q.where(Execution.scheduled_at >= f.since)
        return q

    async def list_executions(
        self, env_id: str, f: ExecutionFilter | None = None, page: int = 0, page_size: int = 100
    ) -> tuple[list[Execution], int]:
        """Newest first; returns (page of executions, count matching the filter)."""
        f = f or ExecutionFilter()
        page_size = max(1, min(page_size, 1000))
        q = self._filtered(select(Execution), env_id, f).order_by(
            Execution.scheduled_at.desc(), Execution.id.desc()
        )
        cq = self._filtered(select(func.count()).select_from(Execution), env_id, f)
        async with self.session() as s:
            if f.tags:
                rows = [r for r in (await s.execute(q)).scalars() if _tags_match(r.tags, f.tags)]
                return rows[page * page_size : (page + 1) * page_size], len(rows)
            total = int((await s.execute(cq)).scalar_one())
            rows = list((await s.execute(q.offset(page * page_size).limit(page_size))).scalars())
        return rows, total

    async def count_by_status(self, env_id: str, workflow: str | None = None) -> dict[str, int]:
        q = (
            select(Execution.status, func.count())
            .where(Execution.env_id == env_id)
            .group_by(Execution.status)
        )
        if workflow:
            q = q.where(Execution.workflow_name == workflow)
        async with self.session() as s:
            return {status: int(n) for status, n in (await s.execute(q)).all()}

    async def queued_executions(self, env_id: str | None = None, limit: int = 500) -> list[Execution]:
        q = select(Execution).where(Execution.status == "queued")
        if env_id:
            q = q.where(Execution.env_id == env_id)
        async with self.session() as s:
            return list(
                (await s.execute(q.order_by(Execution.scheduled_at, Execution.id).limit(limit))).scalars()
            )

    async def active_executions(
        self, *, env_id: str | None = None, agent_id: str | None = None, workflow: str | None = None
    ) -> list[Execution]:
        q = select(Execution).where(Execution.status.in_(ACTIVE_STATUSES))
        if env_id:
            q = q.where(Execution.env_id == env_id)
        if agent_id:
            q = q.where(Execution.agent_id == agent_id)
        if workflow:
            q = q.where(Execution.workflow_name == workflow)
        async with self.session() as s:
            return list((await s.execute(q)).scalars())

    async def assign_execution(self, execution_id: str, agent: Agent) -> bool:
        """Compare-and-set queued → assigned; False when someone else got there first."""
        async with self.session() as s:
            res = await s.execute(
                update(Execution)
                .where(Execution.id == execution_id, Execution.status == "queued")
                .values(
                    status="assigned",
                    agent_id=agent.id,
                    agent_name=agent.name,
                    agent_labels=agent.labels,
                    assigned_at=now(),
                    status_at=now(),
                    queue_reason=None,
                )
            )
        return bool(res.rowcount)  # type: ignore[attr-defined]

    async def update_execution(
        self, execution_id: str, *, expect_status: Iterable[str] = (), **values: Any
    ) -> bool:
        conds = [Execution.id == execution_id]
        expected = list(expect_status)
        if expected:
            conds.append(Execution.status.in_(expected))
        if "status" in values:
            values.setdefault("status_at", now())
        async with self.session() as s:
            res = await s.execute(update(Execution).where(*conds).values(**values))
        return bool(res.rowcount)  # type: ignore[attr-defined]

    async def delete_executions(self, execution_ids: Sequence[str]) -> None:
        async with self.session() as s:
            for chunk in _chunks(list(execution_ids), 500):
                await s.execute(delete(ExecutionEvent).where(ExecutionEvent.execution_id.in_(chunk)))
                await s.execute(delete(Artifact).where(Artifact.execution_id.in_(chunk)))
                await s.execute(delete(Execution).where(Execution.id.in_(chunk)))

    # ------------------------------------------------------------------ events

    async def ingest_events(self, execution_id: str, events: Sequence[dict[str, Any]]) -> int:
        """Store events idempotently on (execution_id, seq); returns the highest contiguous seq stored."""
        async with self.session() as s:
            row = (
                await s.execute(
                    select(Execution.last_seq).where(Execution.id == execution_id).with_for_update()
                )
            ).scalar_one_or_none()
            if row is None:
                raise NotFound(f"execution {execution_id!r} not found")
            last = int(row)
            fresh = [e for e in events if int(e["seq"]) > last]
            if fresh:
                values = [
                    {
                        "execution_id": execution_id,
                        "seq": int(e["seq"]),
                        "ts": int(e.get("ts", 0)),
                        "type": str(e.get("type", "log")),
                        "ref": e.get("ref"),
                        "data": e,
                    }
                    for e in fresh
                ]
                # One cached statement executed for many parameter sets (no per-batch SQL compilation).
                await s.execute(self._insert_events_stmt, values)
                seqs = (
                    await s.execute(
                        select(ExecutionEvent.seq)
                        .where(ExecutionEvent.execution_id == execution_id, ExecutionEvent.seq > last)
                        .order_by(ExecutionEvent.seq)
                        .limit(len(values) + 10000)
                    )
                ).scalars()
                new_last = last
                for seq in seqs:
                    if seq != new_last + 1:
                        break
                    new_last = seq
                if new_last != last:
                    await s.execute(
                        update(Execution).where(Execution.id == execution_id).values(last_seq=new_last)
                    )
                last = new_last
        return last

    async def read_events(
        self, execution_id: str, after_seq: int = 0, limit: int = 5000, types: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        q = (
            select(ExecutionEvent.data)
            .where(ExecutionEvent.execution_id == execution_id, ExecutionEvent.seq > after_seq)
            .order_by(ExecutionEvent.seq)
            .limit(limit)
        )
        if types:
            q = q.where(ExecutionEvent.type.in_(list(types)))
        async with self.session() as s:
            rows: Sequence[dict[str, Any]] = (await s.execute(q)).scalars().all()
            data = [dict(d) for d in rows]
            return data

    async def drop_events(self, execution_id: str) -> None:
        """After compaction into the blob store: remove the rows and remember where the events went."""
        async with self.session() as s:
            await s.execute(delete(ExecutionEvent).where(ExecutionEvent.execution_id == execution_id))
            await s.execute(update(Execution).where(Execution.id == execution_id).values(compacted=True))

    # ------------------------------------------------------------------ artifacts

    async def add_artifact(self, execution_id: str, name: str, size: int, blob_key: str) -> None:
        stmt = (
            self._insert(Artifact)
            .values(execution_id=execution_id, name=name, size=size, blob_key=blob_key, created_at=now())
            .on_conflict_do_update(
                index_elements=["execution_id", "name"], set_={"size": size, "blob_key": blob_key}
            )
        )
        async with self.session() as s:
            await s.execute(stmt)

    async def list_artifacts(self, execution_id: str) -> list[Artifact]:
        async with self.session() as s:
            rows = await s.execute(
                select(Artifact).where(Artifact.execution_id == execution_id).order_by(Artifact.name)
            )
            return list(rows.scalars())

    async def get_artifact(self, execution_id: str, name: str) -> Artifact:
        async with self.session() as s:
            art = await s.get(Artifact, (execution_id, name))
        if art is None:
            raise NotFound(f"artifact {name!r} not found")
        return art

    # ------------------------------------------------------------------ facts, metrics, retention

    async def record_facts(self, ex: Execution, failed_steps: Sequence[tuple[str, str, str]]) -> None:
        """Write the aggregation facts of a finished execution (idempotent)."""
        values = {
            "execution_id": ex.id,
            "env_id": ex.env_id,
            "workflow_name": ex.workflow_name,
            "number": ex.number,
            "group_id": ex.group_id,
            "status": ex.status,
            "agent_name": ex.agent_name,
            "agent_labels": ex.agent_labels or {},
            "scheduled_at": ex.scheduled_at,
            "finished_at": ex.finished_at or now(),
            "duration_ms": ex.duration_ms,
        }
        async with self.session() as s:
            if ex.agent_name:
                previous = (
                    await s.execute(
                        select(ExecutionFact.status)
                        .where(
                            ExecutionFact.env_id == ex.env_id,
                            ExecutionFact.workflow_name == ex.workflow_name,
                            ExecutionFact.agent_name == ex.agent_name,
                            ExecutionFact.scheduled_at < ex.scheduled_at,
                        )
                        .order_by(ExecutionFact.scheduled_at.desc())
                        .limit(1)
                    )
                ).scalar_one_or_none()
                values["has_previous"] = previous is not None
                values["flipped"] = previous is not None and previous != ex.status
                latest = {
                    "env_id": ex.env_id,
                    "workflow_name": ex.workflow_name,
                    "agent_name": ex.agent_name,
                    "agent_labels": ex.agent_labels or {},
                    "execution_id": ex.id,
                    "status": ex.status,
                    "scheduled_at": ex.scheduled_at,
                }
                newer = {k: latest[k] for k in ("agent_labels", "execution_id", "status", "scheduled_at")}
                stmt = self._insert(LatestFact).values(latest)
                await s.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["env_id", "workflow_name", "agent_name"],
                        set_=newer,
                        where=LatestFact.scheduled_at <= stmt.excluded.scheduled_at,
                    )
                )
            inserted = await s.execute(
                self._insert(ExecutionFact)
                .values(values)
                .on_conflict_do_nothing()
                .returning(ExecutionFact.execution_id)
            )
            if inserted.first() is not None:  # a replay adds nothing to the day rollup
                await add_fact_day(s, values)
            rows = [
                {
                    "execution_id": ex.id,
                    "ref": ref,
                    "env_id": ex.env_id,
                    "workflow_name": ex.workflow_name,
                    "name": name[:512],
                    "status": status,
                    "agent_name": ex.agent_name,
                    "agent_labels": ex.agent_labels or {},
                    "scheduled_at": ex.scheduled_at,
                }
                for ref, name, status in failed_steps
            ]
            if rows:
                await s.execute(self._insert(StepFact).values(rows).on_conflict_do_nothing())

    async def metrics(
        self, env_id: str, workflow: str, since: datetime, by: str | None = None
    ) -> dict[str, Any]:
        return await workflow_metrics(self.sessions, MetricsQuery(env_id, workflow, since, by))

    async def prunable_executions(
        self, env_id: str, workflow: str, retain_days: int | None, retain_count: int | None, limit: int = 200
    ) -> list[str]:
        """Finished executions of a workflow that fall outside "the newest N" or "younger than D days"."""
        finished = [
            Execution.env_id == env_id,
            Execution.workflow_name == workflow,
            Execution.status.in_(TERMINAL_STATUSES),
        ]
        ids: list[str] = []
        async with self.session() as s:
            if retain_days is not None:
                cutoff = now() - timedelta(days=retain_days)
                q = select(Execution.id).where(*finished, Execution.scheduled_at < cutoff).limit(limit)
                ids += list((await s.execute(q)).scalars())
            if retain_count is not None and len(ids) < limit:
                q = (
                    select(Execution.id)
                    .where(*finished)
                    .order_by(Execution.scheduled_at.desc(), Execution.id.desc())
                    .offset(retain_count)
                    .limit(limit)
                )
                ids += [i for i in (await s.execute(q)).scalars() if i not in ids]
        return ids[:limit]

    async def workflows_with_executions(self, env_id: str) -> list[str]:
        async with self.session() as s:
            q = select(Execution.workflow_name).where(Execution.env_id == env_id).distinct()
            return sorted((await s.execute(q)).scalars())


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _tags_match(tags: dict[str, Any], wanted: dict[str, str]) -> bool:
    return all(str(tags.get(k)) == v for k, v in wanted.items())


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


__all__ = [
    "ACTIVE_STATUSES",
    "ROLES",
    "TERMINAL_STATUSES",
    "ExecutionFilter",
    "Store",
    "hash_token",
    "new_execution_id",
    "new_id",
    "now",
]
