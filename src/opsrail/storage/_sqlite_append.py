"""The SQLite hot path for appending events: one dedicated driver connection, multi-row statements.

SQLAlchemy's per-transaction work (pool checkout and reset, events, per-row parameter processing) costs
several times what SQLite itself spends on a small WAL commit. Appends are the one path where that
matters, so they use the driver directly; everything else, reads included, goes through SQLAlchemy. The
text formats written here are the ones SQLAlchemy's SQLite types read back.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from opsrail.ingest import Arrival
from opsrail.storage._engine import SQLITE_BUSY_TIMEOUT_MS, translate_driver_error

_COLUMNS = "source, event_id, type, subject, time, received_at, kind, object_id, channel, attributes, data"
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_CHUNK = 500  # rows per statement: 5,500 parameters, well under SQLite's limit of 32,766

Key = tuple[str, str]


def sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


# The events of one group share their receipt time, and the steps a worker saves in one batch share the batch's
# clock reading: format each once.
sqlite_time_shared = lru_cache(maxsize=256)(sqlite_time)


@lru_cache(maxsize=8)
def _insert(rows: int) -> str:
    # Only placeholders are repeated into the text; every value is bound.
    values = ", ".join([_ROW] * rows)
    return f"INSERT OR IGNORE INTO events ({_COLUMNS}) VALUES {values} RETURNING source, event_id, seq"  # noqa: S608


@lru_cache(maxsize=8)
def _find(rows: int) -> str:
    pairs = " OR ".join(["(source = ? AND event_id = ?)"] * rows)
    return f"SELECT source, event_id, seq, received_at FROM events WHERE {pairs}"  # noqa: S608 - placeholders only


def _read_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class SqliteAppender:
    def __init__(self, path: str, synchronous: str) -> None:
        self._path = path
        self._pragmas = [
            "PRAGMA journal_mode=WAL",
            f"PRAGMA synchronous={synchronous}",
            f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
            "PRAGMA wal_autocheckpoint=0",
        ]
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._lock_file: int | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000
            )
            for pragma in self._pragmas:
                connection.execute(pragma)
            self._connection = connection
        return self._connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            if self._lock_file is not None:
                os.close(self._lock_file)
                self._lock_file = None

    @contextmanager
    def _across_processes(self) -> Iterator[None]:
        """Queue behind other processes' appenders on an OS file lock.

        SQLite's own busy handler polls with sleeps of up to 100 ms, which throttles several server
        processes writing one file; a blocking flock wakes the next writer the moment the lock is free.
        """
        if self._lock_file is None:
            self._lock_file = os.open(self._path + ".append-lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    def append(self, arrivals: Sequence[Arrival]) -> tuple[dict[Key, int], dict[Key, tuple[int, datetime]]]:
        """Insert arrivals with distinct keys that are new.

        Returns (inserted key -> seq, existing key -> (seq, first received_at)).
        """
        inserted: dict[Key, int] = {}
        earlier: dict[Key, tuple[int, datetime]] = {}
        # Encode the rows before taking the locks: other processes wait only for SQLite's own work.
        statements: list[tuple[str, list[Any]]] = []
        for start in range(0, len(arrivals), _CHUNK):
            chunk = arrivals[start : start + _CHUNK]
            params: list[Any] = []
            for arrival in chunk:
                params.extend(_values(arrival))
            statements.append((_insert(len(chunk)), params))
        with self._lock, self._across_processes():
            try:
                cursor = self._connect().cursor()
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        for source, event_id, seq in cursor.execute(sql, params):
                            inserted[(source, event_id)] = seq
                    missing = [(a.event.source, a.event.id) for a in arrivals]
                    missing = [key for key in missing if key not in inserted]
                    for start in range(0, len(missing), _CHUNK):
                        keys = missing[start : start + _CHUNK]
                        flat = [part for key in keys for part in key]
                        for source, event_id, seq, received_at in cursor.execute(_find(len(keys)), flat):
                            earlier[(source, event_id)] = (seq, _read_time(received_at))
                    cursor.execute("COMMIT")
                except BaseException:
                    cursor.execute("ROLLBACK")
                    raise
                finally:
                    cursor.close()
            except sqlite3.Error as exc:
                self._connection = None  # reconnect next time: the file may have been replaced
                raise translate_driver_error(exc) from exc
        return inserted, earlier


def event_values(arrival: Arrival) -> tuple[Any, ...]:
    """An arrival as the values of an events row, in ``_COLUMNS`` order, times still ``datetime``: what both
    appenders write (this one formats the times as SQLAlchemy's SQLite type does; PostgreSQL takes them as they are).
    Attributes and data are JSON text; an event without data stores JSON ``null``, as SQLAlchemy's JSON type does."""
    normalised = arrival.event
    event = normalised.event
    attributes = event.optional_attributes()
    return (
        event.source,
        event.id,
        event.type,
        normalised.subject,
        event.time,
        arrival.received_at,
        normalised.kind,
        normalised.object_id,
        arrival.channel,
        orjson.dumps(attributes).decode() if attributes else "{}",
        normalised.data_json().decode(),
    )


def _values(arrival: Arrival) -> tuple[Any, ...]:
    values = event_values(arrival)
    # The events of one group share their receipt time: the shared formatter formats it once.
    return (*values[:4], sqlite_time(values[4]), sqlite_time_shared(values[5]), *values[6:])
