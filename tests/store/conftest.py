from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.store import Store
from tests.pg import SKIP_REASON, fresh_database, postgres_available


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        st = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'shoal.db'}")
        try:
            yield st
        finally:
            await st.close()
        return
    if not postgres_available():
        pytest.skip(SKIP_REASON)
    async with fresh_database() as url:
        st = await Store.open(url)
        try:
            yield st
        finally:
            await st.close()
