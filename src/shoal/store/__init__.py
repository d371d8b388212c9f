"""shoal.store: the control plane's persistence — SQLAlchemy models, migrations, queries, blob stores.

SQLite (WAL) under ``$SHOAL_HOME`` by default, PostgreSQL when ``SHOAL_DATABASE_URL`` says so; logs and
artifacts in a local directory or an S3-compatible bucket. Nothing outside this package writes SQL.
"""

from shoal.store._blobs import BlobStore, LocalBlobStore, S3BlobStore, blob_store_from_env, normalize_key
from shoal.store._db import database_url, shoal_home
from shoal.store._errors import Conflict, NotFound, StoreError
from shoal.store._models import Agent, Artifact, Environment, Execution, Organization, Resource, Token
from shoal.store._selectors import LabelSelector
from shoal.store._store import (
    ACTIVE_STATUSES,
    ROLES,
    TERMINAL_STATUSES,
    ExecutionFilter,
    Store,
    hash_token,
    new_execution_id,
    new_id,
    now,
)

__all__ = [
    "ACTIVE_STATUSES",
    "ROLES",
    "TERMINAL_STATUSES",
    "Agent",
    "Artifact",
    "BlobStore",
    "Conflict",
    "Environment",
    "Execution",
    "ExecutionFilter",
    "LabelSelector",
    "LocalBlobStore",
    "NotFound",
    "Organization",
    "Resource",
    "S3BlobStore",
    "Store",
    "StoreError",
    "Token",
    "blob_store_from_env",
    "database_url",
    "hash_token",
    "new_execution_id",
    "new_id",
    "normalize_key",
    "now",
    "shoal_home",
]
