"""Fixtures of the toolkit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.execution.toolkit.toolkit_helpers import Execution


@pytest.fixture
def execution(tmp_path: Path) -> Execution:
    ex = Execution(tmp_path / "ex")
    for d in (ex.shoal_dir, ex.data, ex.artifacts):
        d.mkdir(parents=True)
    return ex
