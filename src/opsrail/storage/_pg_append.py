"""The PostgreSQL hot path for appending events: one dedicated driver connection, one round trip per group.

Through SQLAlchemy a group of events cost seven round trips (pool pre-ping, BEGIN, the event-order lock, the insert,
COMMIT, …) and its text-format array parameters were escaped by a regular expression per value. Each round trip
hands the GIL back and forth with the event loop, which under load made a 16-event group take 6 to 7 ms of wall time
for under a millisecond of database work. Here the lock, the insert and the commit go out together in psycopg's
pipeline mode, and the columns travel as binary arrays. Everything else, reads included, stays on SQLAlchemy.

``append_async`` does the same on the server's event loop through an ``AsyncConnection`` of its own: the group
commit writer then waits for PostgreSQL without a thread, so no GIL changes hands per group.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa

from opsrail.ingest import Arrival
from opsrail.storage._engine import EVENT_ORDER_LOCK
from opsrail.storage._sqlite_append import Key, event_values

# One statement for the whole group, its columns as arrays (``%b``: binary format, no per-value escaping). The
# values are the SQLite appender's (``event_values``): aware timestamps, JSON text of the attributes and data.
_INSERT = (
    "INSERT INTO events (source, event_id, type, subject, time, received_at, kind, object_id, channel, attributes, "
    "data) SELECT s, e, t, sub, tm, r, k, o, c, a::jsonb, d::jsonb FROM unnest(%b::text[], %b::text[], %b::text[], "
    "%b::text[], %b::timestamptz[], %b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[]) "
    "WITH ORDINALITY AS u(s, e, t, sub, tm, r, k, o, c, a, d, n) ORDER BY n "
    "ON CONFLICT (source, event_id) DO NOTHING RETURNING source, event_id, seq"
)
_LOCK = f"SELECT pg_advisory_xact_lock({EVENT_ORDER_LOCK})"  # see storage._engine.order_event_inserts
_FIND = (
    "SELECT e.source, e.event_id, e.seq, e.received_at FROM events e "
    "JOIN unnest(%b::text[], %b::text[]) AS k(source, event_id) USING (source, event_id)"
)


class PostgresAppender:
    """Appends groups of events through one psycopg connection taken out of the engine's pool."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._connection: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._async: psycopg.AsyncConnection[Any] | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            pooled = self._engine.raw_connection()
            driver = pooled.driver_connection
            assert isinstance(driver, psycopg.Connection)
            pooled.detach()  # ours from now on: the pool neither resets nor reuses it
            self._connection = driver
        return self._connection

    def _discard(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def close(self) -> None:
        with self._lock:
            self._discard()
        self._discard_async()

    def _discard_async(self) -> None:
        if self._async is not None:
            self._async.pgconn.finish()  # closes the socket; no event loop needed
            self._async = None

    def append(self, arrivals: Sequence[Arrival]) -> tuple[dict[Key, int], dict[Key, tuple[int, datetime]]]:
        """Insert arrivals with distinct keys that are new.

        Returns (inserted key -> seq, existing key -> (seq, first received_at)). A connection found broken (the
        server restarted, say) is replaced and the group written once more: the insert skips what a lost commit
        may already have stored, so repeating it stores nothing twice.
        """
        columns = _columns(arrivals)
        with self._lock:
            for attempt in (1, 2):
                try:
                    return self._write(arrivals, columns)
                except psycopg.Error as exc:
                    broken = _broken(self._connection)
                    self._recover()
                    if not _write_again(exc, broken, attempt):
                        raise _translated(exc) from exc
        raise AssertionError("unreachable")

    def _recover(self) -> None:
        """After a failed group: roll back, or drop the connection when it cannot be rolled back."""
        connection = self._connection
        if connection is None or _broken(connection):
            self._discard()
            return
        try:
            connection.rollback()
        except psycopg.Error:
            self._discard()

    async def append_async(self, arrivals: Sequence[Arrival]) -> tuple[dict[Key, int], dict[Key, tuple[int, datetime]]]:
        """``append`` on the running event loop. One caller at a time: the group commit writer runs one group at
        a time."""
        columns = _columns(arrivals)
        for attempt in (1, 2):
            try:
                return await self._write_async(arrivals, columns)
            except psycopg.Error as exc:
                broken = _broken(self._async)
                await self._recover_async()
                if not _write_again(exc, broken, attempt):
                    raise _translated(exc) from exc
        raise AssertionError("unreachable")

    async def _recover_async(self) -> None:
        """``_recover`` for the event loop's connection."""
        connection = self._async
        if connection is None or _broken(connection):
            self._discard_async()
            return
        try:
            await connection.rollback()
        except psycopg.Error:
            self._discard_async()

    async def _connect_async(self) -> psycopg.AsyncConnection[Any]:
        loop = asyncio.get_running_loop()
        if self._async is not None and (self._async.closed or self._async_loop is not loop):
            self._discard_async()  # a connection waits on the loop it was made on
        if self._async is None:
            self._async = await psycopg.AsyncConnection.connect(self._conninfo)
            self._async_loop = loop
        return self._async

    async def _write_async(
        self, arrivals: Sequence[Arrival], columns: list[list[Any]]
    ) -> tuple[dict[Key, int], dict[Key, tuple[int, datetime]]]:
        connection = await self._connect_async()
        async with connection.pipeline(), connection.cursor() as cursor:
            await cursor.execute(_LOCK)
            await cursor.execute(_INSERT, columns)
            await connection.commit()
            inserted: dict[Key, int] = {(source, event_id): seq for source, event_id, seq in await cursor.fetchall()}
        earlier: dict[Key, tuple[int, datetime]] = {}
        if len(inserted) < len(arrivals):
            missing = _missing(arrivals, inserted)
            async with connection.cursor() as cursor:
                await cursor.execute(_FIND, [[key[0] for key in missing], [key[1] for key in missing]])
                for source, event_id, seq, received_at in await cursor.fetchall():
                    earlier[(source, event_id)] = (seq, received_at.astimezone(UTC))
            await connection.rollback()  # a read: end its transaction
        return inserted, earlier

    def _write(
        self, arrivals: Sequence[Arrival], columns: list[list[Any]]
    ) -> tuple[dict[Key, int], dict[Key, tuple[int, datetime]]]:
        connection = self._connect()
        with connection.pipeline(), connection.cursor() as cursor:
            cursor.execute(_LOCK)
            cursor.execute(_INSERT, columns)
            connection.commit()
            inserted: dict[Key, int] = {(source, event_id): seq for source, event_id, seq in cursor.fetchall()}
        earlier: dict[Key, tuple[int, datetime]] = {}
        if len(inserted) < len(arrivals):
            missing = _missing(arrivals, inserted)
            with connection.cursor() as cursor:
                cursor.execute(_FIND, [[key[0] for key in missing], [key[1] for key in missing]])
                for source, event_id, seq, received_at in cursor.fetchall():
                    earlier[(source, event_id)] = (seq, received_at.astimezone(UTC))
            connection.rollback()  # a read: end its transaction
        return inserted, earlier


def _columns(arrivals: Sequence[Arrival]) -> list[list[Any]]:
    """The group's rows turned into one list per column, for ``_INSERT``."""
    return [list(column) for column in zip(*(event_values(a) for a in arrivals), strict=True)]


def _missing(arrivals: Sequence[Arrival], inserted: dict[Key, int]) -> list[Key]:
    return [key for key in ((a.event.source, a.event.id) for a in arrivals) if key not in inserted]


def _broken(connection: psycopg.Connection[Any] | psycopg.AsyncConnection[Any] | None) -> bool:
    return connection is None or connection.broken or connection.closed


def _write_again(exc: psycopg.Error, broken: bool, attempt: int) -> bool:
    """Write the group once more, on a new connection, only when the first try found the connection broken."""
    return broken and attempt == 1 and isinstance(exc, psycopg.OperationalError)


def _translated(exc: psycopg.Error) -> sa.exc.StatementError:
    """The driver's error as SQLAlchemy raises it elsewhere, so callers handle one family of errors."""
    return sa.exc.DBAPIError.instance(_INSERT, None, exc, psycopg.Error)
