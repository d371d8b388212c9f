from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from shoal.workflow._plan import Plan

from ._plans import SHELLS, Workspace


@pytest.fixture(params=sorted(SHELLS))
def shell_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def workspace(tmp_path: Path, shell_name: str) -> Callable[[Plan], Workspace]:
    def make(plan: Plan) -> Workspace:
        return Workspace(tmp_path, plan, shell_name)

    return make
