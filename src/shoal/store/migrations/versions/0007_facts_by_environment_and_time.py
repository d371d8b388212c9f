"""execution and step facts indexed by environment and time, covering what the dashboard reads

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 04:20:00.000000

The existing (env, workflow, time) indexes cannot serve "every workflow of an environment since T"
without reading all of the environment's facts, which are never pruned.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_READ = ["workflow_name", "status", "duration_ms", "execution_id", "agent_name"]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_facts_env_time", "execution_facts", ["env_id", "scheduled_at"], postgresql_include=_READ
        )
    else:
        op.create_index(
            "ix_facts_env_time", "execution_facts", ["env_id", "scheduled_at", *_READ, "agent_labels"]
        )
    op.create_index(
        "ix_step_facts_env_time", "step_facts", ["env_id", "scheduled_at", "workflow_name", "ref", "name"]
    )


def downgrade() -> None:
    op.drop_index("ix_step_facts_env_time", table_name="step_facts")
    op.drop_index("ix_facts_env_time", table_name="execution_facts")
