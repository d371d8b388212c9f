"""Fixtures: the Kubernetes stand-in (kubesim) and a KubernetesRuntime bound to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.execution._kubernetes import KubernetesRuntime
from tests.execution.kubernetes.kube_helpers import stand_in_options
from tests.kubesim.fixtures import kubeconfig_path, kubesim

__all__ = ["kubeconfig_path", "kubesim", "runtime"]

@pytest.fixture
async def runtime(kubeconfig_path: Path, tmp_path: Path) -> AsyncIterator[KubernetesRuntime]:
    rt = KubernetesRuntime(kubeconfig_path, home=tmp_path / "home", options=stand_in_options(agent="agent-1"))
    try:
        yield rt
    finally:
        await rt.close()
