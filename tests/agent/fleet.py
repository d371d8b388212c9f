"""Agents as tasks of a test's event loop, against a server in a thread; polling helpers with deadlines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shoal.agent import Agent, AgentConfig
from shoal.client import Client
from tests.agent.fakes import ScriptedRuntime
from tests.harness import RunningServer


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def eventually(check: Callable[[], Any], timeout: float = 90.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: last {value!r}")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.25)


class Fleet:
    """Agents running as tasks of the test's event loop."""

    def __init__(self, server: RunningServer, token: str, root: Path) -> None:
        self.server, self.token, self.root = server, token, root
        self.tasks: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self.runtimes: dict[str, ScriptedRuntime] = {}

    def start(
        self, name: str, labels: dict[str, str], runtime: ScriptedRuntime | None = None
    ) -> ScriptedRuntime:
        runtime = runtime or self.runtimes.get(name) or ScriptedRuntime()
        self.runtimes[name] = runtime
        cfg = AgentConfig(self.server.url, self.token, name, labels, self.root / name, backoff_max_s=0.5)
        stop = asyncio.Event()
        task = asyncio.create_task(Agent(cfg, runtime).run(stop))
        self.tasks[name] = (task, stop)
        return runtime

    async def stop(self, name: str) -> None:
        task, stop = self.tasks.pop(name)
        stop.set()
        await asyncio.wait_for(task, 30)

    async def stop_all(self) -> None:
        for name in list(self.tasks):
            await self.stop(name)


def finished(client: Client, ids: list[str]) -> list[dict[str, Any]] | None:
    got = [client.execution(i) for i in ids]
    done = all(e["result"]["status"] in ("passed", "failed", "aborted", "canceled") for e in got)
    return got if done else None
