"""The dead-letter store: rejected payloads with their bytes, reason and errors, until replayed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opsrail.ingest import DeadLetter
from opsrail.storage._engine import write_transaction
from opsrail.storage._tables import as_utc, dead_letters


class SqlDeadLetterStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        rows = [
            {
                "id": d.id,
                "received_at": d.received_at,
                "channel": d.channel,
                "source": d.source,
                "content_type": d.content_type,
                "headers": d.headers,
                "body": d.body,
                "body_bytes": d.body_bytes,
                "truncated": d.truncated,
                "reason": d.reason,
                "errors": d.errors,
                "status": d.status,
                "attempts": d.attempts,
                "replayed_at": d.replayed_at,
                "replay_receipts": d.replay_receipts,
            }
            for d in letters
        ]
        with write_transaction(self.engine) as conn:
            conn.execute(dead_letters.insert(), rows)

    def get(self, id: str) -> DeadLetter | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(dead_letters).where(dead_letters.c.id == id)).mappings().first()
        return _letter(row) if row else None

    def find(self, status: str | None, limit: int, before_id: str | None) -> list[DeadLetter]:
        stmt = sa.select(dead_letters).order_by(dead_letters.c.id.desc()).limit(limit)
        if status:
            stmt = stmt.where(dead_letters.c.status == status)
        if before_id:
            stmt = stmt.where(dead_letters.c.id < before_id)
        with self.engine.connect() as conn:
            return [_letter(row) for row in conn.execute(stmt).mappings()]

    def record_attempt(
        self,
        id: str,
        *,
        replayed_at: datetime | None,
        receipts: list[dict[str, Any]] | None,
        reason: str | None,
        errors: list[dict[str, str]] | None,
    ) -> None:
        values: dict[str, Any] = {"attempts": dead_letters.c.attempts + 1}
        if replayed_at is not None:
            values.update(status="replayed", replayed_at=replayed_at, replay_receipts=receipts)
        if reason is not None:
            values["reason"] = reason
        if errors is not None:
            values["errors"] = errors
        with write_transaction(self.engine) as conn:
            conn.execute(dead_letters.update().where(dead_letters.c.id == id).values(**values))


def _letter(row: sa.RowMapping) -> DeadLetter:
    return DeadLetter(
        id=row["id"],
        received_at=as_utc(row["received_at"]) or row["received_at"],
        channel=row["channel"],
        source=row["source"],
        content_type=row["content_type"],
        headers=row["headers"] or {},
        body=bytes(row["body"]),
        body_bytes=row["body_bytes"],
        truncated=row["truncated"],
        reason=row["reason"],
        errors=row["errors"] or [],
        status=row["status"],
        attempts=row["attempts"],
        replayed_at=as_utc(row["replayed_at"]),
        replay_receipts=row["replay_receipts"],
    )
