"""The event store: append-only, deduplicated on (source, id), in one transaction per group."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from opsrail.ingest import Arrival, Receipt, StoredEvent
from opsrail.services import EventQuery
from opsrail.storage._engine import order_event_inserts, write_transaction
from opsrail.storage._sqlite_append import Key, SqliteAppender
from opsrail.storage._tables import as_utc, events

if TYPE_CHECKING:  # psycopg is the optional `postgres` extra: imported only when PostgreSQL is used
    from opsrail.storage._pg_append import PostgresAppender

_KEY_CHUNK = 400  # (source, id) pairs per IN (...) lookup; well under SQLite's 32,766 variables


class SqlEventStore:
    def __init__(self, engine: sa.Engine, *, sqlite_synchronous: str = "NORMAL") -> None:
        self.engine = engine
        is_sqlite = engine.dialect.name == "sqlite"
        database = engine.url.database
        self._appender: SqliteAppender | PostgresAppender | None = None
        self._pg_appender: PostgresAppender | None = None
        if is_sqlite and database and database != ":memory:":
            self._appender = SqliteAppender(database, sqlite_synchronous)
        elif engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
            from opsrail.storage._pg_append import PostgresAppender

            self._appender = self._pg_appender = PostgresAppender(engine)
        dialect = sqlite if is_sqlite else postgresql
        self._insert = (
            dialect.insert(events)
            .on_conflict_do_nothing(index_elements=["source", "event_id"])
            .returning(events.c.source, events.c.event_id, events.c.seq)
        )

    def append(self, arrivals: Sequence[Arrival]) -> list[Receipt]:
        if not arrivals:
            return []
        first_index, unique = _first_arrivals(arrivals)
        if self._appender is not None:
            inserted, earlier = self._appender.append(unique)
        else:  # an in-memory SQLite database, or PostgreSQL through another driver
            with write_transaction(self.engine) as conn:
                order_event_inserts(conn)
                inserted = {(r[0], r[1]): r[2] for r in conn.execute(self._insert, [_row(a) for a in unique])}
                missing = [k for k in first_index if k not in inserted]
                earlier = self._receipts_of(conn, missing) if missing else {}
        return _receipts(arrivals, first_index, inserted, earlier)

    @property
    def appends_async(self) -> bool:
        """Whether ``append_async`` is available: PostgreSQL through psycopg."""
        return self._pg_appender is not None

    async def append_async(self, arrivals: Sequence[Arrival]) -> list[Receipt]:
        """``append`` on the running event loop, without a thread (PostgreSQL through psycopg only)."""
        if self._pg_appender is None:
            raise TypeError("append_async needs PostgreSQL through psycopg")
        if not arrivals:
            return []
        first_index, unique = _first_arrivals(arrivals)
        inserted, earlier = await self._pg_appender.append_async(unique)
        return _receipts(arrivals, first_index, inserted, earlier)

    def _receipts_of(
        self, conn: sa.Connection, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, datetime]]:
        found: dict[tuple[str, str], tuple[int, datetime]] = {}
        for start in range(0, len(keys), _KEY_CHUNK):
            chunk = keys[start : start + _KEY_CHUNK]
            query = sa.select(events.c.source, events.c.event_id, events.c.seq, events.c.received_at).where(
                sa.tuple_(events.c.source, events.c.event_id).in_(chunk)
            )
            for source, event_id, seq, received_at in conn.execute(query):
                found[(source, event_id)] = (seq, as_utc(received_at) or received_at)
        return found

    def find(self, query: EventQuery) -> list[StoredEvent]:
        stmt = sa.select(events).order_by(events.c.seq.desc()).limit(query.limit)
        if query.type:
            stmt = stmt.where(events.c.type == query.type)
        if query.kind:
            stmt = stmt.where(events.c.kind == query.kind)
        if query.source:
            stmt = stmt.where(events.c.source == query.source)
        if query.object_id:
            stmt = stmt.where(events.c.object_id == query.object_id)
        if query.since:
            # SQLite compares the stored UTC text; the bound value must be UTC too.
            since = query.since.astimezone(UTC) if query.since.tzinfo else query.since.replace(tzinfo=UTC)
            stmt = stmt.where(events.c.received_at >= since)
        if query.before_seq:
            stmt = stmt.where(events.c.seq < query.before_seq)
        with self.engine.connect() as conn:
            return [_stored(row) for row in conn.execute(stmt).mappings()]

    def get(self, source: str, id: str) -> StoredEvent | None:
        stmt = sa.select(events).where(events.c.source == source, events.c.event_id == id)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).mappings().first()
        return _stored(row) if row else None

    def close(self) -> None:
        if self._appender is not None:
            self._appender.close()

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one())


def _first_arrivals(arrivals: Sequence[Arrival]) -> tuple[dict[Key, int], list[Arrival]]:
    """Within a group the first arrival of a key wins; later ones are duplicates of it."""
    first_index: dict[Key, int] = {}
    for index, arrival in enumerate(arrivals):
        first_index.setdefault((arrival.event.source, arrival.event.id), index)
    return first_index, [arrivals[i] for i in first_index.values()]


def _receipts(
    arrivals: Sequence[Arrival],
    first_index: dict[Key, int],
    inserted: dict[Key, int],
    earlier: dict[Key, tuple[int, datetime]],
) -> list[Receipt]:
    """One receipt per arrival, in order: accepted with its new number, or a duplicate of what was stored first."""
    if len(inserted) == len(arrivals):  # the common case: everything was new
        return [
            Receipt(a.event.event.id, a.event.event.source, a.received_at, "accepted", inserted[key])
            for a, key in zip(arrivals, first_index, strict=True)
        ]
    receipts: list[Receipt] = []
    for index, arrival in enumerate(arrivals):
        key = (arrival.event.source, arrival.event.id)
        if key in inserted and first_index[key] == index:
            receipts.append(Receipt(key[1], key[0], arrival.received_at, "accepted", inserted[key]))
        elif key in earlier:
            seq, received_at = earlier[key]
            receipts.append(Receipt(key[1], key[0], received_at, "duplicate", seq))
        else:
            first = arrivals[first_index[key]]
            receipts.append(Receipt(key[1], key[0], first.received_at, "duplicate", inserted.get(key)))
    return receipts


def _row(arrival: Arrival) -> dict[str, Any]:
    event = arrival.event.event
    return {
        "source": event.source,
        "event_id": event.id,
        "type": event.type,
        "subject": arrival.event.subject,
        "time": event.time.astimezone(UTC) if event.time else None,
        "received_at": arrival.received_at,
        "kind": arrival.event.kind,
        "object_id": arrival.event.object_id,
        "channel": arrival.channel,
        "attributes": event.optional_attributes(),
        "data": arrival.event.data,
    }


def _stored(row: sa.RowMapping) -> StoredEvent:
    return StoredEvent(
        seq=row["seq"],
        id=row["event_id"],
        source=row["source"],
        type=row["type"],
        subject=row["subject"],
        time=as_utc(row["time"]),
        received_at=as_utc(row["received_at"]) or row["received_at"],
        kind=row["kind"],
        object_id=row["object_id"],
        channel=row["channel"],
        data=row["data"],
        attributes=row["attributes"] or {},
    )
