"""Events, dead letters and API tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SeqInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", SeqInt, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(512), nullable=False),
        sa.Column("event_id", sa.String(512), nullable=False),
        sa.Column("type", sa.String(256), nullable=False),
        sa.Column("subject", sa.String(512)),
        sa.Column("time", Timestamp),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("kind", sa.String(64)),
        sa.Column("object_id", sa.String(256)),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("attributes", Json, nullable=False),
        sa.Column("data", Json),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("source", "event_id", name="uq_events_source_event_id"),
    )
    op.create_index("ix_events_type_seq", "events", ["type", "seq"])
    op.create_index("ix_events_kind_object_id", "events", ["kind", "object_id"])
    op.create_index("ix_events_received_at", "events", ["received_at"])

    op.create_table(
        "dead_letters",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64)),
        sa.Column("content_type", sa.String(256)),
        sa.Column("headers", Json, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("body_bytes", sa.Integer, nullable=False),
        sa.Column("truncated", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("errors", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("replayed_at", Timestamp),
        sa.Column("replay_receipts", Json),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
    )
    op.create_index("ix_dead_letters_status_id", "dead_letters", ["status", "id"])

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp),
        sa.Column("revoked_at", Timestamp),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_index("ix_dead_letters_status_id", "dead_letters")
    op.drop_table("dead_letters")
    op.drop_index("ix_events_received_at", "events")
    op.drop_index("ix_events_kind_object_id", "events")
    op.drop_index("ix_events_type_seq", "events")
    op.drop_table("events")
