"""The audit log's rows: appended one at a time under a lock, so each links to the one before it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opsrail.governance import GENESIS, AuditEntry, entry_hash
from opsrail.storage._engine import write_transaction
from opsrail.storage._tables import as_utc, audit_log

# A fixed key for PostgreSQL's transaction-scoped advisory lock: appenders in every process take turns.
_CHAIN_LOCK = 0x6F70_7372_6175_6474  # "opsraudt"
_PAGE = 5000


class SqlAuditStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def append(
        self, at: datetime, actor: str | None, action: str, subject: str | None, details: Mapping[str, Any]
    ) -> AuditEntry:
        with write_transaction(self.engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})
            last = conn.execute(
                sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
            ).first()
            seq = int(last[0]) + 1 if last else 1
            prev_hash = str(last[1]) if last else GENESIS
            digest = entry_hash(prev_hash, seq, at, actor, action, subject, details)
            conn.execute(
                audit_log.insert().values(
                    seq=seq,
                    at=at,
                    actor=actor,
                    action=action,
                    subject=subject,
                    details=dict(details),
                    prev_hash=prev_hash,
                    hash=digest,
                )
            )
        return AuditEntry(seq, at, actor, action, subject, dict(details), prev_hash, digest)

    def entries(self, *, since: datetime | None = None, after_seq: int = 0) -> Iterator[AuditEntry]:
        """Every entry in sequence order, read a page at a time."""
        position = after_seq
        while True:
            query = sa.select(audit_log).where(audit_log.c.seq > position).order_by(audit_log.c.seq).limit(_PAGE)
            if since is not None:
                query = query.where(audit_log.c.at >= since)
            with self.engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
            for row in rows:
                yield AuditEntry(
                    seq=int(row["seq"]),
                    at=as_utc(row["at"]) or row["at"],
                    actor=row["actor"],
                    action=row["action"],
                    subject=row["subject"],
                    details=row["details"],
                    prev_hash=row["prev_hash"],
                    hash=row["hash"],
                )
            if len(rows) < _PAGE:
                return
            position = int(rows[-1]["seq"])
