"""Saving a batch of runs, and taking claimed steps, on PostgreSQL: one statement per table, its columns as binary
arrays.

Through SQLAlchemy a batch of 500 three-step runs took 146 to 170 ms (``bench.run_saves``): psycopg's
``executemany`` sends one statement per row, and SQLAlchemy processes every row's parameters first. Here each
table gets one statement over ``unnest`` of its columns (``%b``: binary format, no per-value escaping), so a batch
is three statements whatever its size. The rows are the run store's (``_runs._batch_rows``), in the order its
SQLite statements take them. A claim takes its steps the same way: one statement for all of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

_RUNS = (
    "UPDATE runs AS r SET status = v.status, error = v.error, finished_at = v.finished_at, "
    "updated_at = v.updated_at, state_version = v.next "
    "FROM unnest(%b::text[], %b::text[], %b::timestamptz[], %b::timestamptz[], %b::int[], %b::text[], %b::int[]) "
    "AS v(status, error, finished_at, updated_at, next, id, version) "
    "WHERE r.id = v.id AND r.state_version = v.version"
)
_STEPS = (
    "UPDATE run_steps AS s SET status = v.status, attempt = v.attempt, due_at = v.due_at, "
    "waiting_for = v.waiting_for, output = v.output::jsonb, error = v.error, started_at = v.started_at, "
    "finished_at = v.finished_at, handler = v.handler, activated_by = v.activated_by, "
    "recovered_by = v.recovered_by, sla_warn_at = v.sla_warn_at, sla_due_at = v.sla_due_at, "
    "sla_state = v.sla_state, lease_owner = NULL, lease_expires_at = NULL "
    "FROM unnest(%b::text[], %b::int[], %b::timestamptz[], %b::text[], %b::text[], %b::text[], "
    "%b::timestamptz[], %b::timestamptz[], %b::bool[], %b::text[], %b::text[], %b::timestamptz[], "
    "%b::timestamptz[], %b::text[], %b::text[], %b::text[]) "
    "AS v(status, attempt, due_at, waiting_for, output, error, started_at, finished_at, handler, activated_by, "
    "recovered_by, sla_warn_at, sla_due_at, sla_state, run_id, step_id) "
    "WHERE s.run_id = v.run_id AND s.step_id = v.step_id"
)
# WITH ORDINALITY … ORDER BY: log entries take their sequence numbers in the order the engine wrote them.
_LOGS = (
    "INSERT INTO run_log (run_id, step_id, activity, at, actor, attributes) "
    "SELECT run_id, step_id, activity, at, actor, attributes::jsonb "
    "FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[], %b::text[], %b::text[]) "
    "WITH ORDINALITY AS v(run_id, step_id, activity, at, actor, attributes, n) ORDER BY n"
)

# Claimed steps: their lease, one more attempt, and the first start kept.
_TAKE = (
    "UPDATE run_steps AS s SET status = 'running', attempt = s.attempt + 1, lease_owner = %b::text, "
    "lease_expires_at = %b::timestamptz, started_at = coalesce(s.started_at, %b::timestamptz) "
    "FROM unnest(%b::text[], %b::text[]) AS v(run_id, step_id) "
    "WHERE s.run_id = v.run_id AND s.step_id = v.step_id"
)


def _columns(rows: list[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


def save(
    cursor: psycopg.Cursor[Any],
    run_rows: list[tuple[Any, ...]],
    step_rows: list[tuple[Any, ...]],
    log_rows: list[tuple[Any, ...]],
) -> int:
    """Update the runs and their changed steps and append the log, in the caller's transaction; returns how many
    runs were updated (fewer than ``run_rows`` when one moved since it was loaded: the caller rolls back)."""
    cursor.execute(_RUNS, _columns(run_rows))
    moved = cursor.rowcount
    if moved != len(run_rows):
        return moved
    if step_rows:
        cursor.execute(_STEPS, _columns(step_rows))
    if log_rows:
        cursor.execute(_LOGS, _columns(log_rows))
    return moved


def take(cursor: psycopg.Cursor[Any], owner: str, until: datetime, now: datetime, steps: list[tuple[str, str]]) -> None:
    """Lease claimed steps (run id, step id; at least one) to ``owner`` until ``until``, in the caller's
    transaction."""
    run_ids, step_ids = _columns(steps)
    cursor.execute(_TAKE, [owner, until, now, run_ids, step_ids])
