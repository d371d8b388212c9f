"""Fixtures for the cluster lifecycle: a store on SQLite and PostgreSQL, a sealer, a controller factory
over a shared in-memory world (what a restarted controller finds again), and a driver that runs passes
until a condition holds (with a deadline, never a sleep for its own sake)."""

from __future__ import annotations

import asyncio
import atexit
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.fernet import Fernet

from shoal.clusters import ClusterController, ControllerSettings, MemoryProvisioner, Provisioner, World
from shoal.server._sealing import Sealer
from shoal.store import Environment, Store
from shoal.store._clusters import ClusterStore
from tests.deploy.conftest import helm
from tests.kubesim.fixtures import kubeconfig_path, kubesim, kubesim_factory
from tests.pg import PG_ADMIN_DB, PG_HOST, PG_PORT, PG_USER, SKIP_REASON, postgres_available

__all__ = ["helm", "kubeconfig_path", "kubesim", "kubesim_factory"]


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        st = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'shoal.db'}")
        try:
            yield st
        finally:
            await st.close()
        return
    if not postgres_available():
        pytest.skip(SKIP_REASON)
    async with _copy_of(await _pg_template()) as url:
        st = await Store.open(url)
        try:
            yield st
        finally:
            await st.close()


_TEMPLATE: list[str] = []


async def _pg_template() -> str:
    """One migrated PostgreSQL database per test process, copied for each test (migrating is slow)."""
    if not _TEMPLATE:
        name = "shoal_tmpl_" + secrets.token_hex(6)
        admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        st = await Store.open(f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}")
        await st.close()
        _TEMPLATE.append(name)
        atexit.register(_drop_template, name)
    return _TEMPLATE[0]


def _drop_template(name: str) -> None:
    async def drop() -> None:
        admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    asyncio.run(drop())


@asynccontextmanager
async def _copy_of(template: str) -> AsyncIterator[str]:
    name = "shoal_t_" + secrets.token_hex(6)
    admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated database per session; each test starts from a copy (migrating costs ~0.4 s)."""
    path = tmp_path_factory.mktemp("template") / "shoal.db"

    async def make() -> None:
        st = await Store.open(f"sqlite+aiosqlite:///{path}")
        async with st.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        await st.close()

    asyncio.run(make())
    return path


@pytest.fixture
async def sqlite_store(tmp_path: Path, migrated_sqlite: Path) -> AsyncIterator[Store]:
    shutil.copy(migrated_sqlite, tmp_path / "shoal.db")
    st = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'shoal.db'}")
    try:
        yield st
    finally:
        await st.close()


@pytest.fixture
def sealer() -> Sealer:
    return Sealer(Fernet.generate_key())


async def default_env(store: Store) -> Environment:
    org = await store.ensure_organization("default")
    return await store.create_environment(org.id, "default", exist_ok=True)


class Rig:
    """A store, an environment, a shared world and controllers built over them."""

    def __init__(self, store: Store, sealer: Sealer, env: Environment) -> None:
        self.store = store
        self.sealer = sealer
        self.env = env
        self.clusters = ClusterStore(store)
        self.world = World()
        self.extra: dict[str, Provisioner] = {}

    def controller(self, crash: Callable[[str], None] | None = None, **settings: Any) -> ClusterController:
        noop = MemoryProvisioner(self.world, crash=crash or (lambda _p: None))
        provisioners: dict[str, Provisioner] = {"noop": noop, **self.extra}
        opts = {"controller_id": "test-ctl", "server_url": "http://127.0.0.1:1", **settings}
        return ClusterController(
            self.store,
            self.sealer,
            provisioners,
            ControllerSettings(**opts),
            crash=crash or (lambda _p: None),
        )

    async def noop_class(self, name: str = "small", **spec: Any) -> None:
        await self.clusters.apply_class(self.env.id, name, {"provisioner": "noop", **spec})

    async def request(self, name: str, class_name: str = "small", **spec: Any) -> str:
        labels = spec.pop("labels", {})
        owner = spec.get("owner") or {}
        row = await self.clusters.create_cluster(
            self.env.id, name, class_name, {"classRef": class_name, **spec}, labels=labels, owner=owner
        )
        return row.id

    async def phase(self, name: str) -> str:
        return (await self.clusters.get_cluster(self.env.id, name)).phase


async def drive(
    controller: ClusterController, done: Callable[[], Awaitable[bool]], timeout: float = 10.0
) -> None:
    """Run controller passes until ``done()`` holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        await controller.sync_pools()
        await controller.reconcile_due()
        if await done():
            return
        if time.monotonic() > deadline:
            raise AssertionError("the controller did not converge in time")
        delay = await controller._next_due_delay()
        await asyncio.sleep(min(0.05, max(0.0, delay if delay is not None else 0.05)))


@pytest.fixture
async def rig(store: Store, sealer: Sealer) -> Rig:
    return Rig(store, sealer, await default_env(store))


@pytest.fixture
async def sqlite_rig(sqlite_store: Store, sealer: Sealer) -> Rig:
    return Rig(sqlite_store, sealer, await default_env(sqlite_store))
