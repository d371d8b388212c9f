"""fact days: execution facts rolled up per UTC day, workflow and agent

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 04:10:00.000000

Existing facts are folded into the new table here (in batches, in Python, so both engines get exactly
the rows that ingest would have written); from then on ingest keeps it up to date.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shoal.store._metrics import fold_fact_days

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_LABELS = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_DURATIONS = sa.JSON().with_variant(postgresql.ARRAY(sa.BigInteger()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "fact_days",
        sa.Column("env_id", sa.String(length=32), nullable=False),
        sa.Column("workflow_name", sa.String(length=253), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("agent_name", sa.String(length=253), nullable=False),
        sa.Column("labels_digest", sa.String(length=32), nullable=False),
        sa.Column("agent_labels", _LABELS, nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("passed", sa.BigInteger(), nullable=False),
        sa.Column("flips", sa.BigInteger(), nullable=False),
        sa.Column("pairs", sa.BigInteger(), nullable=False),
        sa.Column("durations", _DURATIONS, nullable=False),
        sa.ForeignKeyConstraint(["env_id"], ["environments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("env_id", "workflow_name", "day", "agent_name", "labels_digest"),
    )
    _backfill()


def _backfill() -> None:
    """One workflow at a time, so memory stays bounded by the largest workflow's facts."""
    facts = sa.table(
        "execution_facts",
        sa.column("env_id", sa.String()),
        sa.column("workflow_name", sa.String()),
        sa.column("scheduled_at", sa.DateTime(timezone=True)),
        sa.column("agent_name", sa.String()),
        sa.column("agent_labels", _LABELS),
        sa.column("status", sa.String()),
        sa.column("flipped", sa.Boolean()),
        sa.column("has_previous", sa.Boolean()),
        sa.column("duration_ms", sa.BigInteger()),
    )
    days = sa.table(
        "fact_days",
        *(
            sa.column(name, type_)
            for name, type_ in (
                ("env_id", sa.String()),
                ("workflow_name", sa.String()),
                ("day", sa.Date()),
                ("agent_name", sa.String()),
                ("labels_digest", sa.String()),
                ("agent_labels", _LABELS),
                ("runs", sa.BigInteger()),
                ("passed", sa.BigInteger()),
                ("flips", sa.BigInteger()),
                ("pairs", sa.BigInteger()),
                ("durations", _DURATIONS),
            )
        ),
    )
    bind = op.get_bind()
    workflows = bind.execute(sa.select(facts.c.env_id, facts.c.workflow_name).distinct()).all()
    for env_id, workflow in workflows:
        result = bind.execute(
            sa.select(*facts.c).where(facts.c.env_id == env_id, facts.c.workflow_name == workflow)
        )
        rows: list[dict[str, Any]] = fold_fact_days(r._mapping for r in result)
        for start in range(0, len(rows), 2000):
            bind.execute(days.insert(), rows[start : start + 2000])


def downgrade() -> None:
    op.drop_table("fact_days")
