"""Connector calls that failed for good (a permanent error, or the last attempt of a retryable one)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from opsrail.storage._engine import write_transaction
from opsrail.storage._tables import as_utc, connector_dead_letters


class SqlConnectorDeadLetters:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(self, record: dict[str, Any]) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(connector_dead_letters.insert().values(**record))

    def get(self, letter_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(connector_dead_letters).where(connector_dead_letters.c.id == letter_id))
                .mappings()
                .first()
            )
        return None if row is None else _letter(row)

    def find(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        query = sa.select(connector_dead_letters).order_by(connector_dead_letters.c.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(connector_dead_letters.c.status == status)
        with self.engine.connect() as conn:
            return [_letter(row) for row in conn.execute(query).mappings()]

    def settle(self, letter_id: str, status: str, by: str | None, at: datetime, error: str | None = None) -> None:
        values: dict[str, Any] = {"status": status, "replayed_at": at, "replayed_by": by}
        if error is not None:
            values["error"] = error
        with write_transaction(self.engine) as conn:
            conn.execute(
                connector_dead_letters.update().where(connector_dead_letters.c.id == letter_id).values(**values)
            )


def _letter(row: Any) -> dict[str, Any]:
    return {
        **{str(k): v for k, v in row.items()},
        "created_at": as_utc(row["created_at"]),
        "replayed_at": as_utc(row["replayed_at"]),
    }
