"""The built-in ledger's records, its idempotent requests, and the events its changes emit, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from opsrail.model import Conflict
from opsrail.storage._engine import write_transaction
from opsrail.storage._tables import events, ledger_records, ledger_requests


class SqlLedgerStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    def get(self, collection: str, record_id: str) -> tuple[dict[str, Any], int] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(ledger_records.c.data, ledger_records.c.version).where(
                    ledger_records.c.collection == collection, ledger_records.c.id == record_id
                )
            ).first()
        return None if row is None else (dict(row.data), int(row.version))

    def find(self, collection: str, account_id: str | None, limit: int) -> list[dict[str, Any]]:
        query = sa.select(ledger_records.c.data).where(ledger_records.c.collection == collection)
        if account_id is not None:
            query = query.where(ledger_records.c.account_id == account_id)
        query = query.order_by(ledger_records.c.created_at.desc(), ledger_records.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(row.data) for row in conn.execute(query)]

    def remembered(self, key: str) -> tuple[str, dict[str, Any]] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(ledger_requests.c.fingerprint, ledger_requests.c.response).where(ledger_requests.c.key == key)
            ).first()
        return None if row is None else (str(row.fingerprint), dict(row.response))

    def apply(
        self,
        collection: str,
        record_id: str,
        account_id: str | None,
        data: dict[str, Any],
        expect_version: int | None,
        emitted: Sequence[dict[str, Any]],
        at: datetime,
        request: tuple[str, str, dict[str, Any]] | None = None,
    ) -> int:
        """Write one record (new when ``expect_version`` is None, else only over that version), the events it
        emits, and the answer to an idempotent request. Raises Conflict when someone changed it meanwhile."""
        with write_transaction(self.engine) as conn:
            if request is not None:
                seen = conn.execute(sa.select(ledger_requests.c.key).where(ledger_requests.c.key == request[0])).first()
                if seen is not None:
                    raise Conflict("this idempotency key was used by a request that finished meanwhile")
            if expect_version is None:
                exists = conn.execute(
                    sa.select(ledger_records.c.id).where(
                        ledger_records.c.collection == collection, ledger_records.c.id == record_id
                    )
                ).first()
                if exists is not None:
                    raise Conflict(f"{collection} {record_id} exists already", hint="choose another id")
                conn.execute(
                    ledger_records.insert().values(
                        collection=collection,
                        id=record_id,
                        account_id=account_id,
                        data=data,
                        version=1,
                        created_at=at,
                        updated_at=at,
                    )
                )
                version = 1
            else:
                version = expect_version + 1
                done = conn.execute(
                    ledger_records.update()
                    .where(
                        ledger_records.c.collection == collection,
                        ledger_records.c.id == record_id,
                        ledger_records.c.version == expect_version,
                    )
                    .values(data=data, version=version, updated_at=at)
                )
                if done.rowcount != 1:
                    raise Conflict(f"{collection} {record_id} changed meanwhile", hint="read it again and retry")
            insert = postgresql_insert if self._postgres else sqlite_insert
            for event in emitted:
                conn.execute(
                    insert(events).values(**event).on_conflict_do_nothing(index_elements=["source", "event_id"])
                )
            if request is not None:
                conn.execute(
                    ledger_requests.insert().values(
                        key=request[0], fingerprint=request[1], response=request[2], created_at=at
                    )
                )
        return version
