"""Alembic environment: used by the `alembic` CLI during development (the server migrates in-process)."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shoal.store import _cluster_models  # noqa: F401  (cluster tables in the metadata)
from shoal.store._models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    url = os.environ.get("SHOAL_DATABASE_URL") or context.config.get_main_option("sqlalchemy.url")
    assert url, "set SHOAL_DATABASE_URL"
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


asyncio.run(_main())
