"""SQLAlchemy tables of the control plane. The same schema serves SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Label maps read by aggregation: binary JSON on PostgreSQL (see migration 0004).
LABELS_JSON = JSON().with_variant(JSONB(), "postgresql")
# What the dashboard reads of every fact of an environment over a window (see migration 0007).
_FACT_COLUMNS_READ = ("workflow_name", "status", "duration_ms", "execution_id", "agent_name")
# A list of durations: a native bigint array on PostgreSQL (appended to in place), a JSON array on SQLite.
DURATIONS = JSON().with_variant(ARRAY(BigInteger), "postgresql")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[datetime]


class Environment(Base):
    __tablename__ = "environments"
    __table_args__ = (UniqueConstraint("org_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(63))
    retain_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    retain_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)  # resources revision
    created_at: Mapped[datetime]


class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    env_id: Mapped[str | None] = mapped_column(
        ForeignKey("environments.id", ondelete="CASCADE"), nullable=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128), default="")
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("env_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    env_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(253))
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    capabilities: Mapped[list[Any]] = mapped_column(JSON, default=list)
    version: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(16), default="offline")  # online | offline
    max_concurrent: Mapped[int] = mapped_column(Integer, default=4)
    server_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # process holding its channel
    connection: Mapped[int] = mapped_column(BigInteger, default=0)  # bumps on every connect
    last_seen: Mapped[datetime | None] = mapped_column(nullable=True)
    connected_at: Mapped[datetime | None] = mapped_column(nullable=True)
    disconnected_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime]


class Resource(Base):
    """A TestWorkflow or TestWorkflowTemplate stored in the control plane (soft-deleted as a tombstone)."""

    __tablename__ = "resources"
    __table_args__ = (
        UniqueConstraint("env_id", "kind", "name"),
        Index("ix_resources_env_revision", "env_id", "revision"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    env_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(253))
    revision: Mapped[int] = mapped_column(BigInteger)
    generation: Mapped[int] = mapped_column(Integer, default=1)  # bumps on every change of the document
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WorkflowCounter(Base):
    __tablename__ = "workflow_counters"
    env_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(253), primary_key=True)
    last_number: Mapped[int] = mapped_column(BigInteger, default=0)


class Execution(Base):
    __tablename__ = "executions"
    __table_args__ = (
        Index("ix_executions_env_workflow_time", "env_id", "workflow_name", "scheduled_at"),
        Index("ix_executions_env_status", "env_id", "status"),
        Index("ix_executions_env_time", "env_id", "scheduled_at"),
        Index("ix_executions_agent_status", "agent_id", "status"),
        Index("ix_executions_group", "group_id"),
        Index("ix_executions_parent", "parent_id"),
    )
    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    env_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    workflow_name: Mapped[str] = mapped_column(String(253))
    number: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(300))
    group_id: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16))
    queue_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    agent_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    agent_name: Mapped[str | None] = mapped_column(String(253), nullable=True)
    agent_labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    target: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # non-sensitive values only
    sealed_config: Mapped[str | None] = mapped_column(Text, nullable=True)  # encrypted sensitive values
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    running_context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    parent_id: Mapped[str | None] = mapped_column(String(24), nullable=True)
    parent_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_by: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # token scope of whoever ran it
    workflow: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the document as run
    signature: Mapped[list[Any]] = mapped_column(JSON, default=list)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    output: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reports: Mapped[list[Any]] = mapped_column(JSON, default=list)
    namespace: Mapped[str | None] = mapped_column(String(253), nullable=True)
    scheduled_at: Mapped[datetime]
    assigned_at: Mapped[datetime | None] = mapped_column(nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    status_at: Mapped[datetime]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)  # highest contiguous seq stored
    compacted: Mapped[bool] = mapped_column(Boolean, default=False)  # events moved to the blob store


class ExecutionEvent(Base):
    __tablename__ = "execution_events"
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class Artifact(Base):
    __tablename__ = "artifacts"
    execution_id: Mapped[str] = mapped_column(
        ForeignKey("executions.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(1024), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    blob_key: Mapped[str] = mapped_column(String(1200))
    created_at: Mapped[datetime]


class ExecutionFact(Base):
    """One narrow row per finished execution: what aggregation reads. Retention of executions (with their
    logs and artifacts) does not touch it, so figures over a window stay exact after pruning."""

    __tablename__ = "execution_facts"
    __table_args__ = (
        Index("ix_facts_env_workflow_time", "env_id", "workflow_name", "scheduled_at"),
        # Every workflow of an environment over a window (the dashboard) without visiting the table:
        # SQLite has no INCLUDE, so the columns read are key columns there; PostgreSQL's index leaves the
        # labels out (an index row has a size limit that an agent's labels must not be able to reach).
        Index("ix_facts_env_time", "env_id", "scheduled_at", *_FACT_COLUMNS_READ, "agent_labels").ddl_if(
            dialect="sqlite"
        ),
        Index(
            "ix_facts_env_time", "env_id", "scheduled_at", postgresql_include=list(_FACT_COLUMNS_READ)
        ).ddl_if(dialect="postgresql"),
    )
    execution_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    env_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    workflow_name: Mapped[str] = mapped_column(String(253))
    number: Mapped[int] = mapped_column(BigInteger)
    group_id: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16))
    agent_name: Mapped[str | None] = mapped_column(String(253), nullable=True)
    agent_labels: Mapped[dict[str, Any]] = mapped_column(LABELS_JSON, default=dict)
    scheduled_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Compared with the same agent's previous run of the workflow (for the flip rate without sorting).
    has_previous: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    flipped: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class LatestFact(Base):
    """The newest finished execution of a workflow per agent (for "latest status per cluster")."""

    __tablename__ = "latest_facts"
    env_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True)
    workflow_name: Mapped[str] = mapped_column(String(253), primary_key=True)
    agent_name: Mapped[str] = mapped_column(String(253), primary_key=True)
    agent_labels: Mapped[dict[str, Any]] = mapped_column(LABELS_JSON, default=dict)
    execution_id: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16))
    scheduled_at: Mapped[datetime]


class StepFact(Base):
    """A step that did not pass in a finished execution (for "which step fails most, and where")."""

    __tablename__ = "step_facts"
    __table_args__ = (
        Index("ix_step_facts_env_workflow_time", "env_id", "workflow_name", "scheduled_at"),
        Index("ix_step_facts_env_time", "env_id", "scheduled_at", "workflow_name", "ref", "name"),
    )
    execution_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    env_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"))
    workflow_name: Mapped[str] = mapped_column(String(253))
    name: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16))
    agent_name: Mapped[str | None] = mapped_column(String(253), nullable=True)
    agent_labels: Mapped[dict[str, Any]] = mapped_column(LABELS_JSON, default=dict)
    scheduled_at: Mapped[datetime]


class FactDay(Base):
    """Execution facts rolled up per UTC day, workflow and agent (with its labels), kept up to date as each
    fact is written (see ``shoal.store._metrics``). A summary over N days reads a few rows per agent and
    day instead of every execution; ``durations`` keeps the exact values for percentiles. Rows are keyed by
    a digest of the labels, so runs of one agent under other labels stay apart.
    """

    __tablename__ = "fact_days"
    env_id: Mapped[str] = mapped_column(ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True)
    workflow_name: Mapped[str] = mapped_column(String(253), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    agent_name: Mapped[str] = mapped_column(String(253), primary_key=True)  # "" for no agent
    labels_digest: Mapped[str] = mapped_column(String(32), primary_key=True)
    agent_labels: Mapped[dict[str, Any]] = mapped_column(LABELS_JSON, default=dict)
    runs: Mapped[int] = mapped_column(BigInteger)
    passed: Mapped[int] = mapped_column(BigInteger)
    flips: Mapped[int] = mapped_column(BigInteger)
    pairs: Mapped[int] = mapped_column(BigInteger)
    durations: Mapped[list[int]] = mapped_column(DURATIONS)  # non-null durations (ms), in no order
