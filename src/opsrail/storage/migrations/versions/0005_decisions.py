"""Decision tables, the model registry, decision policies and records; task assignees.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "decision_tables",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("filename", sa.String(512)),
        sa.Column("published_at", Timestamp, nullable=False),
        sa.Column("published_by", sa.String(128)),
        sa.PrimaryKeyConstraint("name", "version", name="pk_decision_tables"),
    )
    op.create_table(
        "models",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("task", sa.String(32), nullable=False),
        sa.Column("artifact", sa.LargeBinary, nullable=False),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("cases", sa.LargeBinary),
        sa.Column("data_sha256", sa.String(64), nullable=False),
        sa.Column("data_source", sa.String(1024)),
        sa.Column("columns", Json, nullable=False),
        sa.Column("params", Json, nullable=False),
        sa.Column("metrics", Json, nullable=False),
        sa.Column("thresholds", Json, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("created_by", sa.String(128)),
        sa.PrimaryKeyConstraint("name", "version", name="pk_models"),
    )
    op.create_table(
        "decision_policies",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("policy", Json, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("updated_by", sa.String(128)),
        sa.PrimaryKeyConstraint("name", name="pk_decision_policies"),
    )
    op.create_table(
        "decision_records",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("decision", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("run_id", sa.String(40)),
        sa.Column("step_id", sa.String(64)),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("inputs", Json, nullable=False),
        sa.Column("outputs", Json, nullable=False),
        sa.Column("matched_rules", Json, nullable=False),
        sa.Column("confidence", sa.Float),
        sa.Column("explanation", Json, nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("route", sa.String(16), nullable=False),
        sa.Column("similar", Json, nullable=False),
        sa.Column("summary", Json),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reviewed_by", sa.String(128)),
        sa.Column("reviewed_at", Timestamp),
        sa.Column("final_outputs", Json),
        sa.Column("reason", sa.Text),
        sa.Column("outcome", Json),
        sa.PrimaryKeyConstraint("id", name="pk_decision_records"),
        sa.UniqueConstraint("idempotency_key", name="uq_decision_records_idempotency_key"),
    )
    op.create_index("ix_decision_records_decision_created_at", "decision_records", ["decision", "created_at"])
    op.create_index("ix_decision_records_run_id_step_id", "decision_records", ["run_id", "step_id"])
    op.create_index("ix_decision_records_status_created_at", "decision_records", ["status", "created_at"])
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("assignee", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("assignee")
    op.drop_table("decision_records")
    op.drop_table("decision_policies")
    op.drop_table("models")
    op.drop_table("decision_tables")
