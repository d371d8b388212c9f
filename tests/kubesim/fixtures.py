"""Pytest fixtures: `kubesim` (a running simulator) and `kubeconfig_path` (a kubeconfig for it).

Import them in a conftest.py: `from tests.kubesim.fixtures import kubesim, kubeconfig_path  # noqa: F401`.
Tests that need other options build their own `KubeSim(...)` in a `with` block.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._sim import KubeSim


@pytest.fixture
def kubesim() -> Iterator[KubeSim]:
    with KubeSim(job_backoff_base=0.2, restart_backoff=0.2, image_pull_backoff=0.2) as sim:
        yield sim


@pytest.fixture
def kubeconfig_path(kubesim: KubeSim, tmp_path: Path) -> Path:
    return kubesim.kubeconfig(tmp_path / "kubeconfig")
