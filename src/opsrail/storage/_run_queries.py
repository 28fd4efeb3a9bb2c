"""Pages of runs for people: filters on playbook, status, account, region and SLA state, newest first, keyset
pagination on ``(created_at, id)`` so that page 500 costs what page 1 costs.

The account and region filters read the run's input (``account_id``, ``segment.region``) with the same
expressions as the indexes migration 0011 creates, so both databases answer from an index.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opsrail.storage._tables import as_utc, audit_log, run_log, run_steps, runs

SLA_STATES = ("running", "near_breach", "breached", "met")
# Created by migration 0011 per dialect (the metadata cannot declare expression indexes portably).
EXPRESSION_INDEXES = ("ix_runs_input_account", "ix_runs_input_region")
# Worst first: the state a run shows when its steps' clocks differ.
_SLA_RANK = {"breached": 4, "near_breach": 3, "running": 2, "met": 1}


def _input_text(dialect: str, *path: str) -> sa.ColumnElement[Any]:
    if dialect == "postgresql":
        expression = "input"
        for part in path[:-1]:
            expression = f"({expression} -> '{part}')"
        return sa.literal_column(f"({expression} ->> '{path[-1]}')")
    return sa.literal_column(f"json_extract(input, '$.{'.'.join(path)}')")


class SqlRunQueries:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def page(
        self,
        *,
        playbook: str | None = None,
        status: str | None = None,
        account: str | None = None,
        region: str | None = None,
        sla: str | None = None,
        before: tuple[datetime, str] | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` runs matching every filter given, newest first, strictly older than ``before``."""
        query = sa.select(
            runs.c.id,
            runs.c.playbook_id,
            runs.c.version,
            runs.c.status,
            runs.c.created_at,
            runs.c.finished_at,
            runs.c.error,
            runs.c.input,
        )
        if playbook:
            query = query.where(runs.c.playbook_id == playbook)
        if status:
            query = query.where(runs.c.status == status)
        if account:
            query = query.where(_input_text(self.dialect, "account_id") == account)
        if region:
            query = query.where(_input_text(self.dialect, "segment", "region") == region)
        if sla:
            # IN, not a correlated EXISTS: SQLite would search the SLA index once per run instead of once in all.
            query = query.where(runs.c.id.in_(sa.select(run_steps.c.run_id).where(run_steps.c.sla_state == sla)))
        if before is not None:
            moment, run_id = before
            query = query.where(
                sa.or_(runs.c.created_at < moment, sa.and_(runs.c.created_at == moment, runs.c.id < run_id))
            )
        query = query.order_by(runs.c.created_at.desc(), runs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            states = self._sla_states(conn, [row["id"] for row in rows])
        return [
            {
                "id": row["id"],
                "playbook": row["playbook_id"],
                "version": row["version"],
                "status": row["status"],
                "created_at": as_utc(row["created_at"]),
                "finished_at": as_utc(row["finished_at"]),
                "error": row["error"],
                "account_id": _text(row["input"], "account_id"),
                "region": _text(row["input"], "segment", "region"),
                "sla": states.get(row["id"]),
            }
            for row in rows
        ]

    def sla_states(self, run_ids: list[str]) -> dict[str, str]:
        """Each run's worst SLA clock state (breached, near_breach, running, met); runs without clocks are absent."""
        with self.engine.connect() as conn:
            return self._sla_states(conn, run_ids)

    def first_run_at(self) -> datetime | None:
        with self.engine.connect() as conn:
            first = conn.execute(sa.select(runs.c.created_at).order_by(runs.c.created_at).limit(1)).scalar()
        return as_utc(first)

    def latest_change(self) -> int:
        """The run log's last sequence number: where a change stream opened now starts."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.max(run_log.c.seq))).scalar() or 0)

    def audit_entries(self, subjects: list[str], limit: int = 200) -> list[dict[str, Any]]:
        """Audit entries about any of ``subjects`` (a run, its tasks, its decision records), oldest first."""
        if not subjects:
            return []
        query = (
            sa.select(
                audit_log.c.seq,
                audit_log.c.at,
                audit_log.c.actor,
                audit_log.c.action,
                audit_log.c.subject,
                audit_log.c.details,
            )
            .where(audit_log.c.subject.in_(subjects))
            .order_by(audit_log.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [dict(row) | {"at": as_utc(row["at"])} for row in rows]

    def _sla_states(self, conn: sa.Connection, run_ids: list[str]) -> dict[str, str]:
        if not run_ids:
            return {}
        query = sa.select(run_steps.c.run_id, run_steps.c.sla_state).where(
            run_steps.c.run_id.in_(run_ids), run_steps.c.sla_state.is_not(None)
        )
        worst: dict[str, str] = {}
        for run_id, state in conn.execute(query):
            if _SLA_RANK.get(state, 0) > _SLA_RANK.get(worst.get(run_id, ""), 0):
                worst[run_id] = state
        return worst


def _text(document: Any, *path: str) -> str | None:
    """A string found at ``path`` in a run's input, or None when the input has another shape."""
    for key in path:
        if not isinstance(document, dict):
            return None
        document = document.get(key)
    return document if isinstance(document, str) else None
