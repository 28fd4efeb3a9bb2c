"""The web console: passwords for directory users, sign-in sessions, and indexes for the run pages.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)

# Expression indexes for the run filters on the input's account and region (see storage/_run_queries.py, which
# writes the same expressions so the planner can use them).
_EXPRESSIONS = {
    "sqlite": {
        "ix_runs_input_account": "json_extract(input, '$.account_id')",
        "ix_runs_input_region": "json_extract(input, '$.segment.region')",
    },
    "postgresql": {
        "ix_runs_input_account": "(input ->> 'account_id')",
        "ix_runs_input_region": "((input -> 'segment') ->> 'region')",
    },
}


def upgrade() -> None:
    op.add_column("users", sa.Column("password_hash", sa.String(256)))
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("roles", Json, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64)),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.Column("revoked_at", Timestamp),
    )
    op.create_index("ix_console_sessions_principal", "console_sessions", ["principal"])
    op.create_index("ix_runs_created_at_id", "runs", ["created_at", "id"])
    op.create_index("ix_runs_playbook_id_created_at", "runs", ["playbook_id", "created_at"])
    op.create_index("ix_audit_log_subject", "audit_log", ["subject"])
    for name, expression in _EXPRESSIONS.get(op.get_bind().dialect.name, {}).items():
        op.execute(f"CREATE INDEX {name} ON runs ({expression}, created_at)")


def downgrade() -> None:
    for name in _EXPRESSIONS.get(op.get_bind().dialect.name, {}):
        op.execute(f"DROP INDEX {name}")
    op.drop_index("ix_audit_log_subject", "audit_log")
    op.drop_index("ix_runs_playbook_id_created_at", "runs")
    op.drop_index("ix_runs_created_at_id", "runs")
    op.drop_index("ix_console_sessions_principal", "console_sessions")
    op.drop_table("console_sessions")
    op.drop_column("users", "password_hash")
