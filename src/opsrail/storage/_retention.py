"""Retention: old payloads purged or anonymised, per kind of data, in one transaction per kind; old finished runs
deleted with their steps, tasks and log, a batch of runs a transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from opsrail.storage._engine import write_transaction
from opsrail.storage._tables import dead_letters, decision_records, events, run_log, run_steps, runs, tasks

KINDS = ("events", "dead_letters", "decision_records")
FINISHED = ("succeeded", "failed", "cancelled")
PURGE_BATCH = 500


class SqlRetentionStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def apply(self, kind: str, before: datetime, *, dry_run: bool = False) -> int:
        """Anonymise or purge the ``kind`` rows older than ``before``; returns how many were (or would be) touched.

        * events: the payload (``data``) is dropped; the envelope (source, id, type, times, kind, object id) stays,
          so deduplication, counts and process analysis still work;
        * dead_letters: the rows are deleted (their bodies are the raw payloads);
        * decision_records: the inputs, similar cases and summary are dropped; the outputs, versions, route and who
          settled the decision stay, for accountability.
        """
        if kind == "events":
            table, condition = events, sa.and_(events.c.received_at < before, events.c.data.is_not(None))
            change: sa.Executable = (
                events.update().where(condition).values(data=sa.null())
            )  # SQL NULL, not the JSON text 'null'
        elif kind == "dead_letters":
            table, condition = dead_letters, dead_letters.c.received_at < before
            change = dead_letters.delete().where(condition)
        elif kind == "decision_records":
            # Anonymising again is harmless, so every old record counts (JSON equality differs between databases).
            table, condition = decision_records, decision_records.c.created_at < before
            change = decision_records.update().where(condition).values(inputs={}, similar=[], summary=sa.null())
        else:
            raise ValueError(f"unknown kind of data {kind!r}")
        with write_transaction(self.engine) as conn:
            count = int(conn.execute(sa.select(sa.func.count()).select_from(table).where(condition)).scalar() or 0)
            if count and not dry_run:
                conn.execute(change)
        return count

    def runs_to_purge(self, before: datetime) -> list[str]:
        """The finished runs that ended before ``before`` and can go, oldest first.

        A run goes only with its whole family: a child run (a ``call`` step's) stays while its parent stays, and a
        parent stays while one of its children stays (still open, or ended after ``before``), so no kept run points
        to a run that is gone. A child whose parent is already gone is free to go.
        """
        with self.engine.connect() as conn:
            ended = conn.execute(
                sa.select(runs.c.id)
                .where(runs.c.status.in_(FINISHED), runs.c.finished_at < before)
                .order_by(runs.c.created_at, runs.c.id)
            ).scalars()
            order = list(ended)
            linked = conn.execute(
                sa.select(runs.c.id, runs.c.parent_run_id).where(
                    sa.or_(
                        runs.c.parent_run_id.is_not(None),
                        runs.c.id.in_(sa.select(runs.c.parent_run_id).where(runs.c.parent_run_id.is_not(None))),
                    )
                )
            ).all()
        chosen = set(order)
        parent_of = {run_id: parent for run_id, parent in linked if parent is not None}
        existing = {run_id for run_id, _ in linked}
        children: dict[str, list[str]] = defaultdict(list)
        for child, parent in parent_of.items():
            children[parent].append(child)

        def must_stay(run_id: str) -> bool:
            parent = parent_of.get(run_id)
            if parent is not None and parent in existing and parent not in chosen:
                return True
            return any(child not in chosen for child in children.get(run_id, ()))

        pending = [run_id for run_id in order if run_id in existing]
        while pending:
            run_id = pending.pop()
            if run_id in chosen and must_stay(run_id):
                chosen.discard(run_id)  # its family is looked at again
                pending.extend(children.get(run_id, ()))
                parent = parent_of.get(run_id)
                if parent is not None:
                    pending.append(parent)
        return [run_id for run_id in order if run_id in chosen]

    def purge_runs(self, run_ids: Sequence[str], before: datetime) -> int:
        """Delete these runs with their steps, tasks and run log, those still finished before ``before`` (a failed
        run retried meanwhile stays); returns how many runs were deleted."""
        deleted = 0
        for start in range(0, len(run_ids), PURGE_BATCH):
            batch = list(run_ids[start : start + PURGE_BATCH])
            with write_transaction(self.engine) as conn:
                still = (
                    sa.select(runs.c.id)
                    .where(runs.c.id.in_(batch), runs.c.status.in_(FINISHED), runs.c.finished_at < before)
                    .with_for_update()
                )
                going = list(conn.execute(still).scalars())
                if not going:
                    continue
                conn.execute(run_log.delete().where(run_log.c.run_id.in_(going)))
                conn.execute(tasks.delete().where(tasks.c.run_id.in_(going)))
                conn.execute(run_steps.delete().where(run_steps.c.run_id.in_(going)))
                deleted += conn.execute(runs.delete().where(runs.c.id.in_(going))).rowcount
        return deleted
