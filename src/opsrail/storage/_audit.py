"""The audit log's rows: appended under a lock, in order, so each links to the one before it.

An entry is appended in its own transaction, or, while a step of a run is executing, held for the transaction
that saves the step's result (``opsrail.engine.hold``): the entries of a whole batch of steps are then chained and
inserted together, after the last entry committed, under the same lock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opsrail.engine import hold
from opsrail.governance import GENESIS, AuditEntry, entry_hash
from opsrail.storage._engine import write_transaction
from opsrail.storage._tables import as_utc, audit_log

# A fixed key for PostgreSQL's transaction-scoped advisory lock: appenders in every process take turns.
_CHAIN_LOCK = 0x6F70_7372_6175_6474  # "opsraudt"
_PAGE = 5000


@dataclass(frozen=True, slots=True)
class HeldAuditEntry:
    """An entry waiting for the transaction that saves its step's result; chained when that transaction runs."""

    at: datetime
    actor: str | None
    action: str
    subject: str | None
    details: Mapping[str, Any]


def append_entries(conn: sa.Connection, entries: Sequence[HeldAuditEntry]) -> list[AuditEntry]:
    """Chain ``entries`` after the last entry and insert them, inside the caller's write transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})
    last = conn.execute(_LAST).first()
    seq = int(last[0]) if last else 0
    prev_hash = str(last[1]) if last else GENESIS
    chained = []
    for entry in entries:
        seq += 1
        details = dict(entry.details)
        digest = entry_hash(prev_hash, seq, entry.at, entry.actor, entry.action, entry.subject, details)
        chained.append(AuditEntry(seq, entry.at, entry.actor, entry.action, entry.subject, details, prev_hash, digest))
        prev_hash = digest
    conn.execute(
        audit_log.insert(),
        [
            {
                "seq": e.seq,
                "at": e.at,
                "actor": e.actor,
                "action": e.action,
                "subject": e.subject,
                "details": e.details,
                "prev_hash": e.prev_hash,
                "hash": e.hash,
            }
            for e in chained
        ],
    )
    return chained


_LAST = sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)


class SqlAuditStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def append(
        self, at: datetime, actor: str | None, action: str, subject: str | None, details: Mapping[str, Any]
    ) -> AuditEntry:
        with write_transaction(self.engine) as conn:
            return append_entries(conn, [HeldAuditEntry(at, actor, action, subject, details)])[0]

    def hold(
        self, at: datetime, actor: str | None, action: str, subject: str | None, details: Mapping[str, Any]
    ) -> bool:
        """Hold the entry for the commit of the step in progress; False when no step is in progress here."""
        return hold(HeldAuditEntry(at, actor, action, subject, details))

    def latest(self, limit: int, *, since: datetime | None = None) -> list[AuditEntry]:
        query = sa.select(audit_log).order_by(audit_log.c.seq.desc()).limit(limit)
        if since is not None:
            query = query.where(audit_log.c.at >= since)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_entry(row) for row in reversed(rows)]

    def entries(
        self, *, since: datetime | None = None, after_seq: int = 0, page_size: int | None = None
    ) -> Iterator[AuditEntry]:
        """Every entry after ``after_seq`` in sequence order, read a page at a time (``page_size`` rows, at most
        5,000: a caller that wants only the first rows asks for no more)."""
        page = min(page_size or _PAGE, _PAGE)
        position = after_seq
        while True:
            query = sa.select(audit_log).where(audit_log.c.seq > position).order_by(audit_log.c.seq).limit(page)
            if since is not None:
                query = query.where(audit_log.c.at >= since)
            with self.engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
            for row in rows:
                yield _entry(row)
            if len(rows) < page:
                return
            position = int(rows[-1]["seq"])


def _entry(row: sa.RowMapping) -> AuditEntry:
    return AuditEntry(
        seq=int(row["seq"]),
        at=as_utc(row["at"]) or row["at"],
        actor=row["actor"],
        action=row["action"],
        subject=row["subject"],
        details=row["details"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
