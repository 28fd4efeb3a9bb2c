"""SQLAlchemy Core tables. Alembic migrations under ``migrations/`` create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# JSONB on PostgreSQL (indexable, compact); JSON text elsewhere.
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
SeqInt = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)

events = sa.Table(
    "events",
    metadata,
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
    sa.UniqueConstraint("source", "event_id"),
    sa.Index(None, "type", "seq"),
    sa.Index(None, "kind", "object_id"),
    sa.Index(None, "received_at"),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
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
    sa.Index(None, "status", "id"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp),
    sa.Column("revoked_at", Timestamp),
    sa.Column("rate_limit", sa.Float),
)

policy_sets = sa.Table(
    "policy_sets",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("cases", sa.Text),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("filename", sa.Text, nullable=False),
    sa.Column("published_by", sa.String(128)),
    sa.Column("published_at", Timestamp, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("roles", Json, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("created_by", sa.String(128)),
    sa.Column("disabled_at", Timestamp),
    # argon2id, for signing in to the console; NULL: the person signs in with an API token or OIDC only.
    sa.Column("password_hash", sa.String(256)),
)

# Console sign-ins. The cookie holds a random secret; only its SHA-256 is stored, as with API tokens.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(128), nullable=False),
    sa.Column("roles", Json, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("csrf", sa.String(64), nullable=False),
    sa.Column("token_hash", sa.String(64)),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Column("revoked_at", Timestamp),
    sa.Index(None, "principal"),
)

delegations = sa.Table(
    "delegations",
    metadata,
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

ledger_records = sa.Table(
    "ledger_records",
    metadata,
    sa.Column("collection", sa.String(32), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.String(128)),
    sa.Column("data", Json, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Index("ix_ledger_records_account", "collection", "account_id"),
)

ledger_requests = sa.Table(
    "ledger_requests",
    metadata,
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("response", Json, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

connector_dead_letters = sa.Table(
    "connector_dead_letters",
    metadata,
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


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands timestamps back naive; everything Opsrail stores is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


playbook_versions = sa.Table(
    "playbook_versions",
    metadata,
    sa.Column("playbook_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("filename", sa.String(512)),
    sa.Column("published_at", Timestamp, nullable=False),
    sa.Column("published_by", sa.String(128)),
)

playbooks = sa.Table(
    "playbooks",
    metadata,
    sa.Column("playbook_id", sa.String(64), primary_key=True),
    sa.Column("active_version", sa.Integer),
    sa.Column("canary_version", sa.Integer),
    sa.Column("canary_percent", sa.Integer, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("playbook_id", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("input", Json, nullable=False),
    sa.Column("trigger_source", sa.String(512)),
    sa.Column("trigger_event_id", sa.String(512)),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp),
    sa.Column("error", sa.Text),
    sa.Column("state_version", sa.Integer, nullable=False),
    sa.Column("parent_run_id", sa.String(40)),
    sa.Column("parent_step_id", sa.String(64)),
    sa.UniqueConstraint("playbook_id", "trigger_source", "trigger_event_id"),
    sa.Index(None, "status", "created_at"),
    sa.Index(None, "parent_run_id"),
    # The console's newest-first pages (keyset on created_at, id), whole and per playbook.
    sa.Index(None, "created_at", "id"),
    sa.Index(None, "playbook_id", "created_at"),
)

run_steps = sa.Table(
    "run_steps",
    metadata,
    sa.Column("run_id", sa.String(40), primary_key=True),
    sa.Column("step_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("due_at", Timestamp),
    sa.Column("waiting_for", sa.String(16)),
    sa.Column("output", Json),
    sa.Column("error", sa.Text),
    sa.Column("started_at", Timestamp),
    sa.Column("finished_at", Timestamp),
    sa.Column("handler", sa.Boolean, nullable=False),
    sa.Column("activated_by", sa.String(64)),
    sa.Column("recovered_by", sa.String(64)),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", Timestamp),
    sa.Column("sla_warn_at", Timestamp),
    sa.Column("sla_due_at", Timestamp),
    sa.Column("sla_state", sa.String(16)),
    sa.Index(None, "status", "due_at"),
    sa.Index(None, "sla_state", "sla_warn_at"),
    sa.Index(None, "status", "lease_expires_at"),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("run_id", sa.String(40), nullable=False),
    sa.Column("step_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("roles", Json, nullable=False),
    sa.Column("required", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("due_at", Timestamp),
    sa.Column("context", Json, nullable=False),
    sa.Column("decisions", Json, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("closed_at", Timestamp),
    sa.Column("assignee", sa.String(128)),
    sa.Column("require_roles", Json),
    sa.Column("escalate_at", Timestamp),
    sa.Column("escalate_to", Json),
    sa.Column("escalated_at", Timestamp),
    sa.Column("requested_by", sa.String(128)),
    sa.Index(None, "status", "due_at"),
    sa.Index(None, "run_id", "step_id"),
)

run_log = sa.Table(
    "run_log",
    metadata,
    sa.Column("seq", SeqInt, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(40), nullable=False),
    sa.Column("step_id", sa.String(64)),
    sa.Column("activity", sa.String(64), nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("actor", sa.String(128)),
    sa.Column("attributes", Json, nullable=False),
    sa.Index(None, "run_id", "seq"),
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)

decision_tables = sa.Table(
    "decision_tables",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("filename", sa.String(512)),
    sa.Column("published_at", Timestamp, nullable=False),
    sa.Column("published_by", sa.String(128)),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
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
    # A pruned version keeps this row; its artifact and cases are emptied (migration 0012).
    sa.Column("pruned_at", Timestamp),
    sa.Column("pruned_by", sa.String(128)),
)

decision_policies = sa.Table(
    "decision_policies",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("policy", Json, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("updated_by", sa.String(128)),
)

decision_records = sa.Table(
    "decision_records",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), unique=True),
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
    sa.Index(None, "decision", "created_at"),
    sa.Index(None, "run_id", "step_id"),
    sa.Index(None, "status", "created_at"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("actor", sa.String(128)),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(256)),
    sa.Column("details", Json, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Index(None, "at"),
    sa.Index(None, "subject"),
)
