"""The agent channels this process holds, and delivery of messages to agents held elsewhere."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import WebSocket
from pydantic import BaseModel

from shoal.protocol import server_message_adapter
from shoal.server._bus import LocalBus

log = logging.getLogger("shoal.server.hub")


@dataclass(eq=False)
class AgentConnection:
    agent_id: str
    env_id: str
    name: str
    connection: int
    websocket: WebSocket
    labels: dict[str, str] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, message: BaseModel) -> bool:
        try:
            async with self.lock:
                await self.websocket.send_text(message.model_dump_json())
            return True
        except Exception:  # the socket is closing; the agent will reconnect and resync
            log.info("send to agent %s failed; it will resync on reconnect", self.name)
            return False


class AgentHub:
    def __init__(self, bus: LocalBus) -> None:
        self._bus = bus
        self._local: dict[str, AgentConnection] = {}
        self._heartbeats: set[str] = set()
        bus.on("agent-message", self._on_remote)

    def note_heartbeat(self, agent_id: str) -> None:
        self._heartbeats.add(agent_id)

    def take_heartbeats(self) -> list[str]:
        """Agents heard from since the last call (written to the store in one batch)."""
        seen, self._heartbeats = self._heartbeats, set()
        return [a for a in seen if a in self._local]

    def register(self, conn: AgentConnection) -> AgentConnection | None:
        """Hold a new channel; returns the one it replaces (the same agent reconnecting), if any."""
        previous = self._local.get(conn.agent_id)
        self._local[conn.agent_id] = conn
        return previous

    def unregister(self, conn: AgentConnection) -> None:
        if self._local.get(conn.agent_id) is conn:
            del self._local[conn.agent_id]

    def is_local(self, agent_id: str) -> bool:
        return agent_id in self._local

    def local_count(self) -> int:
        return len(self._local)

    async def send(self, agent_id: str, message: BaseModel) -> None:
        conn = self._local.get(agent_id)
        if conn is not None:
            await conn.send(message)
            return
        await self._bus.publish("agent-message", agent_id=agent_id, message=message.model_dump(mode="json"))

    async def _on_remote(self, notice: dict[str, Any]) -> None:
        conn = self._local.get(str(notice.get("agent_id")))
        if conn is None:
            return
        await conn.send(server_message_adapter.validate_python(notice["message"]))
