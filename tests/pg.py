"""PostgreSQL for tests: a fresh database per use on the server at 127.0.0.1:5432 (trust auth).

Tests that need PostgreSQL skip, saying why, only when no server answers there.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

PG_HOST = os.environ.get("SHOAL_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SHOAL_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SHOAL_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("SHOAL_TEST_PG_DB", "test")


def postgres_available() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


SKIP_REASON = f"no PostgreSQL server answers on {PG_HOST}:{PG_PORT} (start it: see .ci/run)"


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Create an empty database, yield its SQLAlchemy URL, drop it afterwards."""
    name = "shoal_t_" + secrets.token_hex(6)
    admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
