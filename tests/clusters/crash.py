"""Crash injection: a hook that "kills" the controller (a BaseException no handler catches) at a named
point, once; and an agent spawner that registers agents in the store without running a process."""

from __future__ import annotations

from pathlib import Path

from shoal.clusters import AgentInstall
from shoal.store import Store


class SimulatedCrash(BaseException):
    """The controller process died here."""


class CrashOnce:
    def __init__(self, point: str) -> None:
        self.point = point
        self.fired = False
        self.seen: list[str] = []

    def __call__(self, point: str) -> None:
        self.seen.append(point)
        if point == self.point and not self.fired:
            self.fired = True
            raise SimulatedCrash(point)


class StoreAgentSpawner:
    """Agents that "connect" by registering online in the store (what a real agent's hello does)."""

    def __init__(self, store: Store, org_id: str) -> None:
        self.store = store
        self.org_id = org_id
        self.running: dict[Path, AgentInstall] = {}
        self.starts = 0

    async def start(self, sandbox: Path, agent: AgentInstall) -> None:
        if sandbox in self.running:
            return
        self.starts += 1
        self.running[sandbox] = agent
        env = await self.store.get_environment(self.org_id, agent.environment)
        await self.store.connect_agent(env.id, agent.name, agent.labels, ["local"], "test", "srv", 1)

    async def stop(self, sandbox: Path) -> None:
        agent = self.running.pop(sandbox, None)
        if agent is not None:
            env = await self.store.get_environment(self.org_id, agent.environment)
            stored = await self.store.get_agent(env.id, agent.name)
            await self.store.disconnect_agent(stored.id)

    def is_running(self, sandbox: Path) -> bool:
        return sandbox in self.running
