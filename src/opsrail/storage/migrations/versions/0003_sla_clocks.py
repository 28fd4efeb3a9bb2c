"""SLA clocks on run steps.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run_steps") as batch:
        batch.add_column(sa.Column("sla_warn_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sla_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sla_state", sa.String(16), nullable=True))
        batch.create_index("ix_run_steps_sla_state_sla_warn_at", ["sla_state", "sla_warn_at"])


def downgrade() -> None:
    with op.batch_alter_table("run_steps") as batch:
        batch.drop_index("ix_run_steps_sla_state_sla_warn_at")
        batch.drop_column("sla_state")
        batch.drop_column("sla_due_at")
        batch.drop_column("sla_warn_at")
