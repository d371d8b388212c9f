"""Notifications between the parts of the control plane, within one process or across several.

Three kinds of notice travel: an execution changed (wakes log followers), an environment's queue may
move (wakes the scheduler), and a message for an agent (delivered by whichever process holds that
agent's channel). ``LocalBus`` keeps them in-process; ``PostgresBus`` carries them over PostgreSQL
LISTEN/NOTIFY so several server processes behave as one (nothing only one process's memory knows
matters for correctness: every notice is also derivable from the database, notices only save waiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("shoal.server.bus")

Handler = Callable[[dict[str, Any]], Awaitable[None]]
CHANNEL = "shoal_bus"


class LocalBus:
    """In-process fan-out; also the base of the PostgreSQL bus (local delivery of remote notices)."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    # --- execution change notices (log followers wait on these)

    def watch(self, execution_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters[execution_id].add(event)
        return event

    def unwatch(self, execution_id: str, event: asyncio.Event) -> None:
        waiters = self._waiters.get(execution_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[execution_id]

    def _wake(self, execution_id: str) -> None:
        for event in self._waiters.get(execution_id, ()):
            event.set()

    # --- typed notices

    def on(self, kind: str, handler: Handler) -> None:
        self._handlers[kind].append(handler)

    async def _deliver(self, message: dict[str, Any]) -> None:
        kind = message.get("kind", "")
        if kind == "execution":
            self._wake(str(message.get("id")))
        for handler in self._handlers.get(kind, ()):
            try:
                await handler(message)
            except Exception:  # a failing handler must not stop the others
                log.exception("bus handler for %s failed", kind)

    async def publish(self, kind: str, **payload: Any) -> None:
        await self._deliver({"kind": kind, **payload})

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class PostgresBus(LocalBus):
    """LISTEN/NOTIFY on one channel; every process receives every notice, its own included."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self._dsn = dsn
        self._listen: Any = None
        self._send: Any = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def start(self) -> None:
        import asyncpg

        self._listen = await asyncpg.connect(self._dsn)
        self._send = await asyncpg.connect(self._dsn)
        await self._listen.add_listener(CHANNEL, self._on_notify)
        self._task = asyncio.create_task(self._pump(), name="shoal-bus")

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._queue.put_nowait(json.loads(payload))
        except ValueError:
            log.warning("ignoring malformed bus payload")

    async def _pump(self) -> None:
        while True:
            message = await self._queue.get()
            await self._deliver(message)

    async def publish(self, kind: str, **payload: Any) -> None:
        text = json.dumps({"kind": kind, **payload})
        if len(text) > 7900:  # NOTIFY payloads are limited to 8000 bytes: deliver the big ones locally
            await self._deliver({"kind": kind, **payload})
            return
        async with self._lock:
            await self._send.execute("SELECT pg_notify($1, $2)", CHANNEL, text)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for conn in (self._listen, self._send):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return "postgresql://" + sqlalchemy_url.split("://", 1)[1]
