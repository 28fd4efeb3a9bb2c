"""Authorization policy sets, the user directory, delegations, and approval composition and escalation on tasks.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "policy_sets",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("cases", sa.Text),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("published_by", sa.String(128)),
        sa.Column("published_at", Timestamp, nullable=False),
    )
    op.create_table(
        "users",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("roles", Json, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.String(128)),
        sa.Column("disabled_at", Timestamp),
    )
    op.create_table(
        "delegations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("delegate", sa.String(128), nullable=False),
        sa.Column("roles", Json, nullable=False),
        sa.Column("starts_at", Timestamp, nullable=False),
        sa.Column("ends_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.String(128)),
        sa.Column("revoked_at", Timestamp),
        sa.Index("ix_delegations_delegate", "delegate", "ends_at"),
    )
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("require_roles", Json, nullable=True))
        batch.add_column(sa.Column("escalate_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("escalate_to", Json, nullable=True))
        batch.add_column(sa.Column("escalated_at", Timestamp, nullable=True))
        batch.add_column(sa.Column("requested_by", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        for column in ("requested_by", "escalated_at", "escalate_to", "escalate_at", "require_roles"):
            batch.drop_column(column)
    op.drop_table("delegations")
    op.drop_table("users")
    op.drop_table("policy_sets")
