"""Connector calls that failed for good, kept with their parameters for replay.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "connector_dead_letters",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("operation", sa.String(128), nullable=False),
        sa.Column("params", Json, nullable=False),
        sa.Column("idempotency_key", sa.String(256), nullable=False),
        sa.Column("run_id", sa.String(40)),
        sa.Column("step_id", sa.String(64)),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("replayed_at", Timestamp),
        sa.Column("replayed_by", sa.String(128)),
        sa.Index("ix_connector_dead_letters_status", "status", "created_at"),
    )


def downgrade() -> None:
    op.drop_table("connector_dead_letters")
