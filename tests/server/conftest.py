from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import RunningServer, server_in_thread


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with server_in_thread(tmp_path / "home") as srv:
        yield srv
