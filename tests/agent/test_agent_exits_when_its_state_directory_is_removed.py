"""An agent whose state directory is removed (an ephemeral cluster's sandbox torn down while its server
was away) stops instead of retrying for ever; one whose directory is there keeps retrying."""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path

from shoal.agent import Agent, AgentConfig


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_removed_state_directory_ends_the_agent(tmp_path: Path) -> None:
    state = tmp_path / "sandbox" / "agent"
    cfg = AgentConfig(f"http://127.0.0.1:{_closed_port()}", "t", "orphan", {}, state, backoff_max_s=0.05)
    agent = Agent(cfg)
    shutil.rmtree(tmp_path / "sandbox")
    await asyncio.wait_for(agent.run(), timeout=30)
    assert agent.orphaned and not agent.refused


async def test_an_agent_with_its_directory_keeps_retrying(tmp_path: Path) -> None:
    cfg = AgentConfig(f"http://127.0.0.1:{_closed_port()}", "t", "patient", {}, tmp_path / "agent",
                      backoff_max_s=0.05)
    agent = Agent(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    done, _ = await asyncio.wait({task}, timeout=1.0)  # several connection attempts fail meanwhile
    assert not done
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    assert not agent.orphaned
