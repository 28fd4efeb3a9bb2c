"""The built-in ledger's records, its idempotent requests, and the events its changes emit, in one transaction.

A change made while a step of a run is executing is held for the transaction that saves the step's result
(``opsrail.engine.hold``), so the record, its event, the idempotent answer and the step's result commit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from opsrail.engine import hold
from opsrail.model import Conflict
from opsrail.storage._engine import order_event_inserts, write_transaction
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
        emits, and the answer to an idempotent request. Raises Conflict when someone changed it meanwhile.

        Inside a step of a run the change is held for the step's commit and the version it will have is returned;
        a conflict found then undoes the step's writes and the step is executed again (see ``opsrail.engine``)."""
        change = HeldLedgerChange(collection, record_id, account_id, data, expect_version, tuple(emitted), at, request)
        if hold(change):
            return 1 if expect_version is None else expect_version + 1
        with write_transaction(self.engine) as conn:
            if emitted:
                order_event_inserts(conn)
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
            return change.apply(conn)


@dataclass(frozen=True, slots=True)
class HeldLedgerChange:
    """One ledger change, written by :meth:`apply` inside the caller's write transaction.

    A record or an idempotency key that exists already fails on the table's primary key (``IntegrityError``);
    a record changed since it was read raises Conflict.
    """

    collection: str
    record_id: str
    account_id: str | None
    data: dict[str, Any]
    expect_version: int | None
    emitted: tuple[dict[str, Any], ...]
    at: datetime
    request: tuple[str, str, dict[str, Any]] | None

    @property
    def emits_events(self) -> bool:
        """The transaction applying it must call ``order_event_inserts`` before its first write."""
        return bool(self.emitted)

    def apply(self, conn: sa.Connection) -> int:
        at = self.at
        if self.expect_version is None:
            conn.execute(
                _INSERT_RECORD,
                {
                    "collection": self.collection,
                    "id": self.record_id,
                    "account_id": self.account_id,
                    "data": self.data,
                    "version": 1,
                    "created_at": at,
                    "updated_at": at,
                },
            )
            version = 1
        else:
            version = self._update(conn)
        postgres = conn.dialect.name == "postgresql"
        for event in self.emitted:
            conn.execute(_INSERT_EVENT_PG if postgres else _INSERT_EVENT_SQLITE, event)
        if self.request is not None:
            key, fingerprint, response = self.request
            conn.execute(
                _INSERT_REQUEST, {"key": key, "fingerprint": fingerprint, "response": response, "created_at": at}
            )
        return version

    def _update(self, conn: sa.Connection) -> int:
        assert self.expect_version is not None
        version = self.expect_version + 1
        done = conn.execute(
            _UPDATE_RECORD,
            {
                "b_collection": self.collection,
                "b_id": self.record_id,
                "b_version": self.expect_version,
                "data": self.data,
                "version": version,
                "updated_at": self.at,
            },
        )
        if done.rowcount != 1:
            raise Conflict(f"{self.collection} {self.record_id} changed meanwhile", hint="read it again and retry")
        return version

    @staticmethod
    def apply_many(conn: sa.Connection, changes: Sequence[HeldLedgerChange]) -> None:
        """Several changes in a few multi-row statements; the same refusals as :meth:`apply`."""
        created = [c for c in changes if c.expect_version is None]
        if created:
            conn.execute(
                _INSERT_RECORD,
                [
                    {
                        "collection": c.collection,
                        "id": c.record_id,
                        "account_id": c.account_id,
                        "data": c.data,
                        "version": 1,
                        "created_at": c.at,
                        "updated_at": c.at,
                    }
                    for c in created
                ],
            )
        for change in changes:
            if change.expect_version is not None:
                change._update(conn)
        emitted = [event for c in changes for event in c.emitted]
        if emitted:
            postgres = conn.dialect.name == "postgresql"
            conn.execute(_INSERT_EVENT_PG if postgres else _INSERT_EVENT_SQLITE, emitted)
        requests = [
            {"key": c.request[0], "fingerprint": c.request[1], "response": c.request[2], "created_at": c.at}
            for c in changes
            if c.request is not None
        ]
        if requests:
            conn.execute(_INSERT_REQUEST, requests)


# Statements built once, so SQLAlchemy reuses their compiled form.
_INSERT_RECORD = ledger_records.insert()
_UPDATE_RECORD = (
    ledger_records.update()
    .where(
        ledger_records.c.collection == sa.bindparam("b_collection"),
        ledger_records.c.id == sa.bindparam("b_id"),
        ledger_records.c.version == sa.bindparam("b_version"),
    )
    .values(data=sa.bindparam("data"), version=sa.bindparam("version"), updated_at=sa.bindparam("updated_at"))
)
_INSERT_REQUEST = ledger_requests.insert()
_INSERT_EVENT_SQLITE = sqlite_insert(events).on_conflict_do_nothing(index_elements=["source", "event_id"])
_INSERT_EVENT_PG = postgresql_insert(events).on_conflict_do_nothing(index_elements=["source", "event_id"])
