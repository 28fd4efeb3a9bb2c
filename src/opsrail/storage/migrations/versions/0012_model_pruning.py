"""Pruned model versions: when and by whom a version's artifact and similar-case index were dropped.

A pruned version keeps its registration (data hash, parameters, metrics, thresholds) for the decision records that
name it; its ``artifact`` and ``cases`` are emptied. Two added columns, so neither database rewrites the table.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("models", sa.Column("pruned_at", sa.DateTime(timezone=True)))
    op.add_column("models", sa.Column("pruned_by", sa.String(128)))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("pruned_by")
        batch.drop_column("pruned_at")
