"""Queries of the ephemeral-cluster lifecycle (classes, pools, clusters, sealed credentials, the lease).

Every write to a cluster is a compare-and-swap on ``resource_version``: the controller re-reads and
retries on :class:`Conflict`, never merges. Pool claims are the same CAS on the member's row.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from shoal.store._cluster_models import (
    ClusterClassRow,
    ClusterCredentialRow,
    ClusterPoolRow,
    ClusterRow,
    ControllerLeaseRow,
)
from shoal.store._errors import Conflict, NotFound
from shoal.store._selectors import LabelSelector
from shoal.store._store import Store, new_id, now

TERMINAL_PHASES = ("Deprovisioned", "Failed")

# A queued controller write: (cluster id, expected resource_version, sealed credentials, values, waiter).
_Write = tuple[str, int, tuple[str, "datetime | None"] | None, dict[str, Any], "asyncio.Future[None]"]


class _BatchConflict(Exception):
    """Some row of a batch moved: redo the batch one write at a time."""


def aware(ts: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if ts is None:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


class ClusterStore:
    """Cluster queries over a :class:`Store` (one short transaction per call)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[_Write] = []
        self._flusher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ classes and pools

    async def apply_class(self, env_id: str, name: str, spec: dict[str, Any]) -> tuple[ClusterClassRow, bool]:
        return await self._apply(ClusterClassRow, env_id, name, spec)

    async def apply_pool(self, env_id: str, name: str, spec: dict[str, Any]) -> tuple[ClusterPoolRow, bool]:
        return await self._apply(ClusterPoolRow, env_id, name, spec)

    async def _apply(self, model: Any, env_id: str, name: str, spec: dict[str, Any]) -> tuple[Any, bool]:
        for _ in range(3):
            try:
                async with self.store.session() as s:
                    row = (
                        await s.execute(select(model).where(model.env_id == env_id, model.name == name))
                    ).scalar_one_or_none()
                    ts = now()
                    if row is None:
                        row = model(
                            id=new_id(),
                            env_id=env_id,
                            name=name,
                            spec=spec,
                            resource_version=1,
                            created_at=ts,
                            updated_at=ts,
                        )
                        s.add(row)
                        return row, True
                    if row.spec == spec:
                        return row, False
                    row.spec = spec
                    row.resource_version += 1
                    row.updated_at = ts
                    return row, True
            except IntegrityError:
                continue  # created concurrently: the next round updates it
        raise Conflict(f"{name!r} is being changed concurrently, try again")

    async def get_class(self, env_id: str, name: str) -> ClusterClassRow | None:
        async with self.store.session() as s:
            return (
                await s.execute(
                    select(ClusterClassRow).where(
                        ClusterClassRow.env_id == env_id, ClusterClassRow.name == name
                    )
                )
            ).scalar_one_or_none()

    async def list_classes(self, env_id: str) -> list[ClusterClassRow]:
        async with self.store.session() as s:
            q = select(ClusterClassRow).where(ClusterClassRow.env_id == env_id).order_by(ClusterClassRow.name)
            return list((await s.execute(q)).scalars())

    async def delete_class(self, env_id: str, name: str) -> None:
        async with self.store.session() as s:
            res = await s.execute(
                delete(ClusterClassRow).where(ClusterClassRow.env_id == env_id, ClusterClassRow.name == name)
            )
        if not res.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"cluster class {name!r} not found")

    async def get_pool(self, env_id: str, name: str) -> ClusterPoolRow | None:
        async with self.store.session() as s:
            return (
                await s.execute(
                    select(ClusterPoolRow).where(ClusterPoolRow.env_id == env_id, ClusterPoolRow.name == name)
                )
            ).scalar_one_or_none()

    async def list_pools(self, env_id: str | None = None) -> list[ClusterPoolRow]:
        q = select(ClusterPoolRow).order_by(ClusterPoolRow.name)
        if env_id is not None:
            q = q.where(ClusterPoolRow.env_id == env_id)
        async with self.store.session() as s:
            return list((await s.execute(q)).scalars())

    async def delete_pool(self, env_id: str, name: str) -> None:
        async with self.store.session() as s:
            res = await s.execute(
                delete(ClusterPoolRow).where(ClusterPoolRow.env_id == env_id, ClusterPoolRow.name == name)
            )
        if not res.rowcount:  # type: ignore[attr-defined]
            raise NotFound(f"cluster pool {name!r} not found")

    async def set_pool_status(self, pool_id: str, status: dict[str, Any]) -> None:
        async with self.store.session() as s:
            await s.execute(update(ClusterPoolRow).where(ClusterPoolRow.id == pool_id).values(status=status))

    # ------------------------------------------------------------------ clusters

    async def create_cluster(
        self,
        env_id: str,
        name: str,
        class_name: str,
        spec: dict[str, Any],
        *,
        labels: dict[str, str] | None = None,
        owner: dict[str, Any] | None = None,
        member_of: str | None = None,
        created_by: dict[str, Any] | None = None,
        cluster_id: str | None = None,
        created_at: datetime | None = None,
    ) -> ClusterRow:
        ts = created_at or now()
        row = ClusterRow(
            id=cluster_id or new_id(),
            env_id=env_id,
            name=name,
            class_name=class_name,
            spec=spec,
            status={"phase": "Pending", "conditions": []},
            labels=dict(labels or {}),
            owner=dict(owner or {}),
            phase="Pending",
            external_name=None,
            teardown=bool(spec.get("teardown")),
            deletion_requested=False,
            finished=False,
            member_of=member_of,
            pool_state="provisioning" if member_of else None,
            claimed_by=None,
            expires_at=None,
            next_reconcile_at=ts,
            resource_version=1,
            created_by=dict(created_by or {}),
            created_at=ts,
            updated_at=ts,
        )
        try:
            async with self.store.session() as s:
                s.add(row)
        except IntegrityError:
            raise Conflict(f"cluster {name!r} already exists") from None
        return row

    async def get_cluster(self, env_id: str, name: str) -> ClusterRow:
        async with self.store.session() as s:
            row = (
                await s.execute(
                    select(ClusterRow).where(ClusterRow.env_id == env_id, ClusterRow.name == name)
                )
            ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"cluster {name!r} not found")
        return row

    async def get_cluster_by_id(self, cluster_id: str) -> ClusterRow | None:
        async with self.store.session() as s:
            return await s.get(ClusterRow, cluster_id)

    async def list_clusters(
        self,
        env_id: str | None = None,
        selector: LabelSelector | None = None,
        *,
        include_finished: bool = True,
        include_members: bool = True,
        class_name: str | None = None,
    ) -> list[ClusterRow]:
        q = select(ClusterRow)
        if env_id is not None:
            q = q.where(ClusterRow.env_id == env_id)
        if not include_finished:
            q = q.where(ClusterRow.finished.is_(False))
        if not include_members:
            q = q.where(ClusterRow.member_of.is_(None))
        if class_name is not None:
            q = q.where(ClusterRow.class_name == class_name)
        async with self.store.session() as s:
            rows = list((await s.execute(q.order_by(ClusterRow.created_at, ClusterRow.name))).scalars())
        if selector is not None:
            rows = [
                r for r in rows if selector.matches({str(k): str(v) for k, v in (r.labels or {}).items()})
            ]
        return rows

    async def due_rows(self, at: datetime, limit: int = 500) -> list[ClusterRow]:
        """Clusters whose next reconcile is due (finished ones only while deletion is pending)."""
        q = (
            select(ClusterRow)
            .where(
                or_(ClusterRow.finished.is_(False), ClusterRow.deletion_requested.is_(True)),
                ClusterRow.next_reconcile_at <= at,
            )
            .order_by(ClusterRow.next_reconcile_at)
            .limit(limit)
        )
        async with self.store.session() as s:
            return list((await s.execute(q)).scalars())

    async def next_due_at(self) -> datetime | None:
        q = select(func.min(ClusterRow.next_reconcile_at)).where(
            or_(ClusterRow.finished.is_(False), ClusterRow.deletion_requested.is_(True))
        )
        async with self.store.session() as s:
            return aware((await s.execute(q)).scalar_one_or_none())

    async def update_cluster(self, cluster_id: str, resource_version: int, **values: Any) -> ClusterRow:
        """Compare-and-swap write; :class:`Conflict` when someone else wrote in between."""
        await self.write_cluster(cluster_id, resource_version, **values)
        row = await self.get_cluster_by_id(cluster_id)
        if row is None:
            raise NotFound(f"cluster {cluster_id} not found")
        return row

    async def write_cluster(
        self,
        cluster_id: str,
        resource_version: int,
        *,
        credentials: tuple[str, datetime | None] | None = None,
        **values: Any,
    ) -> None:
        """:meth:`update_cluster` without reading the row back (the controller's write); with
        ``credentials`` (sealed, expiry) the hand-over is stored in the same transaction.

        Writes submitted while another batch is being committed are committed together (group commit):
        each caller still returns only once its own write is durable, or gets its own :class:`Conflict`.
        """
        values = {**values, "resource_version": resource_version + 1, "updated_at": now()}
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((cluster_id, resource_version, credentials, values, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:200], self._pending[200:]
            batch.sort(
                key=lambda item: item[0]
            )  # one lock order for every batch: no deadlock between writers
            outcomes: list[BaseException | None] | None = None
            if len(batch) > 1 and self.store.engine.dialect.supports_sane_multi_rowcount:
                with contextlib.suppress(_BatchConflict):
                    outcomes = await self._write_many(batch)
            if outcomes is None:
                outcomes = await self._write_one_by_one(batch)
            for (*_rest, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if outcome is None:
                    future.set_result(None)
                else:
                    future.set_exception(outcome)

    async def _write_many(self, batch: list[_Write]) -> list[BaseException | None]:
        """The common case in a few statements: one executemany per set of columns written; when any
        row's version moved, the whole transaction is rolled back and the batch goes one by one."""
        table = cast(Table, ClusterRow.__table__)
        groups: dict[tuple[str, ...], list[_Write]] = {}
        for item in batch:
            groups.setdefault(tuple(sorted(item[3])), []).append(item)
        try:
            async with self.store.session() as s:
                for keys, items in groups.items():
                    stmt = (
                        update(table)
                        .where(table.c.id == bindparam("w_id"), table.c.resource_version == bindparam("w_rv"))
                        .values({k: bindparam(f"w_{k}", type_=table.c[k].type) for k in keys})
                    )
                    params = [
                        {"w_id": cid, "w_rv": rv, **{f"w_{k}": v for k, v in values.items()}}
                        for cid, rv, _c, values, _f in items
                    ]
                    res = await s.execute(stmt, params)
                    if res.rowcount != len(params):  # type: ignore[attr-defined]
                        raise _BatchConflict
                for cid, _rv, credentials, _v, _f in batch:
                    if credentials is not None:
                        await s.execute(self._upsert_credentials(cid, *credentials))
        except _BatchConflict:
            raise
        except Exception as exc:  # the whole batch failed: every writer learns it
            return [exc] * len(batch)
        return [None] * len(batch)

    async def _write_one_by_one(self, batch: list[_Write]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        try:
            async with self.store.session() as s:
                for cluster_id, version, credentials, values, _f in batch:
                    res = await s.execute(
                        update(ClusterRow)
                        .where(ClusterRow.id == cluster_id, ClusterRow.resource_version == version)
                        .values(**values)
                    )
                    if not res.rowcount:  # type: ignore[attr-defined]
                        outcomes.append(Conflict(f"cluster {cluster_id} changed concurrently"))
                        continue
                    if credentials is not None:
                        await s.execute(self._upsert_credentials(cluster_id, *credentials))
                    outcomes.append(None)
        except Exception as exc:  # the whole batch failed: every writer learns it
            return [exc] * len(batch)
        return outcomes

    async def signal(self, cluster_id: str, *, teardown: bool = False, delete_: bool = False) -> ClusterRow:
        """The user's teardown/deletion signal: sticky flags, written without a version check."""
        values: dict[str, Any] = {
            "resource_version": ClusterRow.resource_version + 1,
            "updated_at": now(),
            "next_reconcile_at": now(),
        }
        if teardown:
            values["teardown"] = True
        if delete_:
            values["deletion_requested"] = True
        async with self.store.session() as s:
            await s.execute(update(ClusterRow).where(ClusterRow.id == cluster_id).values(**values))
            row = await s.get(ClusterRow, cluster_id)
            if row is None:
                raise NotFound(f"cluster {cluster_id} not found")
            await s.refresh(row)
            return row

    async def poke(self, cluster_id: str, at: datetime | None = None) -> None:
        """Make a cluster due now (or at ``at``, if that is earlier than what is stored)."""
        at = at or now()
        async with self.store.session() as s:
            await s.execute(
                update(ClusterRow)
                .where(ClusterRow.id == cluster_id, ClusterRow.next_reconcile_at > at)
                .values(next_reconcile_at=at)
            )

    async def touch_activity(self, cluster_id: str, at: datetime | None = None) -> ClusterRow:
        """Renew ``lastActivityAt`` (idle timeout, heartbeat owners): a compare-and-swap like any write."""
        for _ in range(20):
            row = await self.get_cluster_by_id(cluster_id)
            if row is None:
                raise NotFound(f"cluster {cluster_id} not found")
            status = {**(row.status or {}), "lastActivityAt": (at or now()).isoformat()}
            try:
                return await self.update_cluster(row.id, row.resource_version, status=status)
            except Conflict:
                continue
        raise Conflict(f"cluster {cluster_id} is changing too fast to renew, try again")

    async def count_in_phases(self, env_id: str, class_name: str, phases: Sequence[str]) -> int:
        q = select(func.count()).where(
            ClusterRow.env_id == env_id,
            ClusterRow.class_name == class_name,
            ClusterRow.phase.in_(list(phases)),
        )
        async with self.store.session() as s:
            return int((await s.execute(q)).scalar_one())

    async def delete_cluster_row(self, cluster_id: str, resource_version: int) -> bool:
        async with self.store.session() as s:
            res = await s.execute(
                delete(ClusterRow).where(
                    ClusterRow.id == cluster_id, ClusterRow.resource_version == resource_version
                )
            )
        return bool(res.rowcount)  # type: ignore[attr-defined]

    async def count_active(self, env_id: str, class_name: str, exclude: str | None = None) -> int:
        q = select(func.count()).where(
            ClusterRow.env_id == env_id,
            ClusterRow.class_name == class_name,
            ClusterRow.finished.is_(False),
            ClusterRow.phase != "Pending",
        )
        if exclude is not None:
            q = q.where(ClusterRow.id != exclude)
        async with self.store.session() as s:
            return int((await s.execute(q)).scalar_one())

    async def pool_members(
        self, env_id: str, pool: str, *, include_finished: bool = False
    ) -> list[ClusterRow]:
        q = select(ClusterRow).where(ClusterRow.env_id == env_id, ClusterRow.member_of == pool)
        if not include_finished:
            q = q.where(ClusterRow.finished.is_(False))
        async with self.store.session() as s:
            return list((await s.execute(q.order_by(ClusterRow.created_at, ClusterRow.id))).scalars())

    async def available_members(self, env_id: str, pool: str) -> list[ClusterRow]:
        """Ready, unclaimed spares, oldest first (FIFO, so that spares do not rot)."""
        q = (
            select(ClusterRow)
            .where(
                ClusterRow.env_id == env_id,
                ClusterRow.member_of == pool,
                ClusterRow.pool_state == "available",
                ClusterRow.phase == "Ready",
                ClusterRow.teardown.is_(False),
                ClusterRow.finished.is_(False),
            )
            .order_by(ClusterRow.created_at, ClusterRow.id)
        )
        async with self.store.session() as s:
            return list((await s.execute(q)).scalars())

    async def claim_member(
        self, member: ClusterRow, claim: ClusterRow, expires_at: datetime | None, **claim_values: Any
    ) -> bool:
        """Bind a spare to a claim in one transaction: compare-and-swap on the claim's resource_version
        (:class:`Conflict` when it moved) and on the member's (``False`` when someone else won it)."""

        class _Lost(Exception):
            pass

        try:
            async with self.store.session() as s:
                res = await s.execute(
                    update(ClusterRow)
                    .where(ClusterRow.id == claim.id, ClusterRow.resource_version == claim.resource_version)
                    .values(**claim_values, resource_version=claim.resource_version + 1, updated_at=now())
                )
                if not res.rowcount:  # type: ignore[attr-defined]
                    raise Conflict(f"cluster {claim.id} changed concurrently")
                res = await s.execute(
                    update(ClusterRow)
                    .where(
                        ClusterRow.id == member.id,
                        ClusterRow.resource_version == member.resource_version,
                        ClusterRow.pool_state == "available",
                    )
                    .values(
                        pool_state="claimed",
                        claimed_by=claim.id,
                        expires_at=expires_at,
                        status={
                            **(member.status or {}),
                            "expiresAt": expires_at.isoformat() if expires_at else None,
                        },
                        resource_version=member.resource_version + 1,
                        updated_at=now(),
                        next_reconcile_at=now(),
                    )
                )
                if not res.rowcount:  # type: ignore[attr-defined]
                    raise _Lost  # rolls the claim's write back too
        except _Lost:
            return False
        return True

    async def claimed_by(self, claim_id: str) -> list[ClusterRow]:
        async with self.store.session() as s:
            q = select(ClusterRow).where(ClusterRow.claimed_by == claim_id)
            return list((await s.execute(q)).scalars())

    # ------------------------------------------------------------------ credentials

    def _upsert_credentials(self, cluster_id: str, sealed: str, expires_at: datetime | None) -> Any:
        ts = now()
        stmt = self.store._insert(ClusterCredentialRow.__table__).values(
            cluster_id=cluster_id, sealed=sealed, expires_at=expires_at, created_at=ts, deliveries=0
        )
        return stmt.on_conflict_do_update(
            index_elements=["cluster_id"], set_={"sealed": sealed, "expires_at": expires_at, "created_at": ts}
        )

    async def put_credentials(self, cluster_id: str, sealed: str, expires_at: datetime | None) -> None:
        """Store (or replace) the sealed hand-over; an upsert, so two writers never collide."""
        async with self.store.session() as s:
            await s.execute(self._upsert_credentials(cluster_id, sealed, expires_at))

    async def read_credentials(self, cluster_id: str) -> ClusterCredentialRow | None:
        """The sealed credentials, counting the delivery."""
        async with self.store.session() as s:
            row = await s.get(ClusterCredentialRow, cluster_id)
            if row is not None:
                row.deliveries += 1
            return row

    async def has_credentials(self, cluster_id: str) -> bool:
        async with self.store.session() as s:
            return await s.get(ClusterCredentialRow, cluster_id) is not None

    async def delete_credentials(self, cluster_id: str) -> None:
        async with self.store.session() as s:
            await s.execute(delete(ClusterCredentialRow).where(ClusterCredentialRow.cluster_id == cluster_id))

    # ------------------------------------------------------------------ single writer

    async def acquire_lease(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew the lease; True when ``holder`` holds it for the next ``ttl_s`` seconds."""
        ts = now()
        until = ts + timedelta(seconds=ttl_s)
        try:
            async with self.store.session() as s:
                res = await s.execute(
                    update(ControllerLeaseRow)
                    .where(
                        ControllerLeaseRow.name == name,
                        or_(ControllerLeaseRow.holder == holder, ControllerLeaseRow.expires_at < ts),
                    )
                    .values(holder=holder, expires_at=until)
                )
                if res.rowcount:  # type: ignore[attr-defined]
                    return True
                exists = await s.get(ControllerLeaseRow, name)
                if exists is not None:
                    return False
                s.add(ControllerLeaseRow(name=name, holder=holder, expires_at=until))
            return True
        except IntegrityError:
            return False

    async def release_lease(self, name: str, holder: str) -> None:
        async with self.store.session() as s:
            await s.execute(
                delete(ControllerLeaseRow).where(
                    and_(ControllerLeaseRow.name == name, ControllerLeaseRow.holder == holder)
                )
            )

    # ------------------------------------------------------------------ dashboard

    async def cluster_overview(self, env_id: str) -> list[dict[str, Any]]:
        """Clusters (requests and spares) with phase, conditions, owner and expiresAt, newest first."""
        rows = await self.list_clusters(env_id)
        return [
            {
                "name": r.name,
                "class": r.class_name,
                "phase": r.phase,
                "conditions": list((r.status or {}).get("conditions") or []),
                "owner": dict(r.owner or {}),
                "labels": dict(r.labels or {}),
                "pool": r.member_of or (r.spec or {}).get("poolRef"),
                "poolState": r.pool_state,
                "expiresAt": (r.status or {}).get("expiresAt"),
                "createdAt": aware(r.created_at).isoformat() if r.created_at else None,  # type: ignore[union-attr]
            }
            for r in reversed(rows)
        ]

    async def pool_overview(self, env_id: str) -> list[dict[str, Any]]:
        """Pools with their ready / provisioning / claimed member counts."""
        pools = await self.list_pools(env_id)
        result = []
        for p in pools:
            counts = await self.pool_counts(env_id, p.name)
            result.append({"name": p.name, "class": (p.spec or {}).get("classRef"), **counts})
        return result

    async def pool_counts(self, env_id: str, pool: str) -> dict[str, int]:
        members = await self.pool_members(env_id, pool)
        counts = {"ready": 0, "provisioning": 0, "claimed": 0}
        for m in members:
            if m.pool_state == "claimed":
                counts["claimed"] += 1
            elif m.teardown or m.phase == "Deprovisioning":
                continue
            elif m.pool_state == "available" and m.phase == "Ready":
                counts["ready"] += 1
            else:
                counts["provisioning"] += 1
        return counts


def ids(rows: Sequence[ClusterRow]) -> list[str]:
    return [r.id for r in rows]
