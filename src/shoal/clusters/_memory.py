"""The ``noop`` provisioner: external resources are entries of an in-memory world. It is what measures the
controller itself (no provisioner cost) and what crash tests inspect; a world can be shared between
controller instances, as a real cloud outlives the controller that crashed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.clusters._provisioner import (
    AgentInstall,
    CrashHook,
    Credentials,
    Observation,
    OwnedResource,
    OwnerTags,
    ProvisionerError,
    State,
    no_crash,
)


@dataclass
class World:
    """What exists "outside": resources by external name, installed agents, and every call made."""

    resources: dict[str, OwnerTags] = field(default_factory=dict)
    created_at: dict[str, datetime] = field(default_factory=dict)
    agents: dict[str, AgentInstall] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    ensures: dict[str, int] = field(default_factory=dict)  # how often each resource was really created


class MemoryProvisioner:
    name = "noop"

    def __init__(self, world: World | None = None, crash: CrashHook = no_crash, ready_after: int = 0) -> None:
        self.world = world or World()
        self.crash = crash
        self.ready_after = ready_after  # observe says CREATING this many times first
        self._pending: dict[str, int] = {}

    def validate(self, params: dict[str, Any]) -> list[str]:
        return [] if not params.get("invalid") else ["parameters.invalid: rejected on request"]

    async def ensure(self, ext: str, params: dict[str, Any], tags: OwnerTags) -> None:
        self.world.calls.append(("ensure", ext))
        if params.get("fail"):
            raise ProvisionerError("ensure fails on request", permanent=True)
        if ext in self.world.resources:
            return
        self.crash("noop.ensure:mid")
        self.world.resources[ext] = tags
        self.world.created_at[ext] = datetime.now(UTC)
        self.world.ensures[ext] = self.world.ensures.get(ext, 0) + 1
        self._pending[ext] = self.ready_after

    async def observe(self, ext: str, params: dict[str, Any]) -> Observation:
        if ext not in self.world.resources:
            return Observation(State.ABSENT)
        left = self._pending.get(ext, 0)
        if left > 0:
            self._pending[ext] = left - 1
            return Observation(State.CREATING)
        return Observation(State.READY)

    async def credentials(self, ext: str, params: dict[str, Any], ttl_s: float) -> Credentials:
        if ext not in self.world.resources:
            raise ProvisionerError(f"{ext} does not exist")
        self.world.calls.append(("credentials", ext))
        return Credentials(
            f"apiVersion: v1\nkind: Config\n# {ext}\n", datetime.now(UTC) + timedelta(seconds=ttl_s)
        )

    async def delete(self, ext: str, params: dict[str, Any]) -> None:
        self.world.calls.append(("delete", ext))
        for name, agent in list(self.world.agents.items()):
            if name.startswith(f"{ext}/"):
                del self.world.agents[name]
                del agent
        self.crash("noop.delete:mid")
        self.world.resources.pop(ext, None)

    async def list_owned(self, controller: str, params: dict[str, Any]) -> list[OwnedResource]:
        return [
            OwnedResource(ext, tags, self.world.created_at.get(ext), "noop")
            for ext, tags in sorted(self.world.resources.items())
            if tags.controller == controller
        ]

    async def install_agent(self, ext: str, params: dict[str, Any], agent: AgentInstall) -> None:
        self.world.calls.append(("install_agent", ext))
        self.world.agents[f"{ext}/{agent.name}"] = agent

    async def remove_agent(self, ext: str, params: dict[str, Any], name: str) -> None:
        self.world.calls.append(("remove_agent", ext))
        self.world.agents.pop(f"{ext}/{name}", None)
