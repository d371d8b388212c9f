"""Fixtures for kubesim's own tests: a running simulator and a lightkube async client bound to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lightkube import AsyncClient, KubeConfig

from tests.kubesim.fixtures import kubeconfig_path, kubesim, kubesim_factory

__all__ = ["client", "kubeconfig_path", "kubesim", "kubesim_factory"]


@pytest.fixture
async def client(kubeconfig_path: Path) -> AsyncIterator[AsyncClient]:
    c = AsyncClient(config=KubeConfig.from_file(kubeconfig_path))
    try:
        yield c
    finally:
        await c.close()

