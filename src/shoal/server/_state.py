"""Everything one server process holds: the store, the blob store, the bus, the agent hub, services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from shoal.clusters import ClusterController, controller_from_env, runs_in_server
from shoal.server._bus import LocalBus, PostgresBus, asyncpg_dsn
from shoal.server._executions import ExecutionService
from shoal.server._hub import AgentHub
from shoal.server._retention import Retention
from shoal.server._sealing import Sealer
from shoal.server._settings import ServerSettings
from shoal.store import BlobStore, Organization, Store, blob_store_from_env

log = logging.getLogger("shoal.server")

DEFAULT_ORG = "default"
DEFAULT_ENV = "default"


@dataclass(eq=False)
class ServerState:
    settings: ServerSettings
    store: Store
    blobs: BlobStore
    bus: LocalBus
    hub: AgentHub
    sealer: Sealer
    executions: ExecutionService
    retention: Retention
    organization: Organization
    admin_token: str | None = None  # only when this start created it
    clusters: ClusterController | None = None  # the ephemeral-cluster controller (API uses its store side)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def start(cls, settings: ServerSettings) -> ServerState:
        store = await Store.open(settings.database_url)
        bus: LocalBus = PostgresBus(asyncpg_dsn(store.url)) if store.dialect == "postgresql" else LocalBus()
        await bus.start()
        hub = AgentHub(bus)
        sealer = Sealer.from_home(settings.home)
        blobs = blob_store_from_env(settings.home)
        org = await store.ensure_organization(DEFAULT_ORG)
        await store.create_environment(org.id, DEFAULT_ENV, exist_ok=True)
        admin_token = await _bootstrap_admin_token(store, org.id, settings.home)
        executions = ExecutionService(
            store, blobs, hub, bus, sealer, organization=org.name, dashboard_url=settings.public_url
        )
        retention = Retention(store, blobs)
        state = cls(settings, store, blobs, bus, hub, sealer, executions, retention, org, admin_token)
        state.tasks.append(asyncio.create_task(state._sweeper(), name="shoal-sweeper"))
        state.tasks.append(asyncio.create_task(state._pruner(), name="shoal-pruner"))
        state.tasks.append(asyncio.create_task(state._heartbeats(), name="shoal-heartbeats"))
        state.clusters = controller_from_env(store, sealer, settings.home, settings.public_url)
        if runs_in_server():
            state.tasks.append(asyncio.create_task(state.clusters.run(state.stopping), name="shoal-clusters"))
        return state

    async def _pause(self, seconds: float) -> bool:
        """Sleep between rounds of a background loop; False once the server is stopping, so a loop ends
        between rounds instead of being cancelled in the middle of a database call."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    async def _sweeper(self) -> None:
        while await self._pause(self.settings.sweep_interval_s):
            try:
                await self.executions.sweep(self.settings.agent_timeout_s, self.settings.agent_grace_s)
            except Exception:  # keep sweeping; one failed pass is logged, the next one retries
                log.exception("sweep failed")

    async def _heartbeats(self) -> None:
        """Write the agents' heartbeats once a second, in one statement, instead of one per message."""
        while await self._pause(1.0):
            try:
                await self.store.touch_agents(self.hub.take_heartbeats())
            except Exception:  # the next round writes them again
                log.exception("recording heartbeats failed")

    async def _pruner(self) -> None:
        while await self._pause(self.settings.prune_interval_s):
            try:
                await self.retention.prune_once()
            except Exception:  # the next pass retries; retention never blocks the rest
                log.exception("retention pass failed")

    async def stop(self) -> None:
        self.stopping.set()
        # The loops end between rounds; whatever is still running after a short wait is cancelled (and
        # a connection reset interrupted by that is expected at shutdown, not an error to show).
        _done, pending = await asyncio.wait(self.tasks, timeout=5.0) if self.tasks else (set(), set())
        logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)
        for task in pending:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.executions.wait_background()
        await self.bus.stop()
        await self.store.close()


async def _bootstrap_admin_token(store: Store, org_id: str, home: Path) -> str | None:
    """On first start, create an admin token and write it to ``home/admin-token`` (mode 0600)."""
    path = home / "admin-token"
    if path.exists():
        existing = path.read_text().strip()
        if existing and await store.authenticate(existing) is not None:
            return None
    _token, plaintext = await store.create_token(org_id, None, "admin", "bootstrap admin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(plaintext + "\n")
    os.chmod(path, 0o600)
    return plaintext
