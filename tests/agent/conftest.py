"""Fixtures for tests that run agents against a real server: ``server`` (in a thread) and ``fleet``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.agent.fleet import Fleet, call
from tests.harness import RunningServer, server_in_thread


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    settings = {
        "agent_grace_s": 1.0,
        "agent_timeout_s": 3.0,
        "sweep_interval_s": 0.2,
        "heartbeat_interval_s": 0.5,
    }
    with server_in_thread(tmp_path / "home", prune_interval_s=0.2, **settings) as srv:
        yield srv


@pytest.fixture
async def fleet(server: RunningServer, tmp_path: Path) -> AsyncIterator[Fleet]:
    admin = server.client()
    token = await call(admin.create_token, "agent", "default")
    admin.close()
    f = Fleet(server, token, tmp_path / "agents")
    try:
        yield f
    finally:
        with contextlib.suppress(Exception):
            await f.stop_all()
