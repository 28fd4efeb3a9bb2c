"""Retention: old payloads purged or anonymised, per kind of data, in one transaction per kind."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from opsrail.storage._engine import write_transaction
from opsrail.storage._tables import dead_letters, decision_records, events

KINDS = ("events", "dead_letters", "decision_records")


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
