"""The SQLite hot path for appending events: one dedicated driver connection, prepared statements.

SQLAlchemy's per-transaction work (pool checkout and reset, events, parameter processing) costs about ten
times what SQLite itself spends on a small WAL commit. Appends are the one path where that matters, so
they use the driver directly; everything else, reads included, goes through SQLAlchemy as usual. The
text formats written here are the ones SQLAlchemy's SQLite types read back.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from opsrail.storage._engine import SQLITE_BUSY_TIMEOUT_MS, translate_driver_error

_INSERT = (
    "INSERT OR IGNORE INTO events (source, event_id, type, subject, time, received_at, kind, object_id, channel, "
    "attributes, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_FIND = "SELECT seq, received_at FROM events WHERE source = ? AND event_id = ?"

Key = tuple[str, str]


def sqlite_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


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

    def append(self, rows: Sequence[dict[str, Any]]) -> tuple[dict[Key, int], dict[Key, tuple[int, datetime]]]:
        """Insert rows that are new; return (inserted key -> seq, existing key -> (seq, first received_at))."""
        inserted: dict[Key, int] = {}
        earlier: dict[Key, tuple[int, datetime]] = {}
        with self._lock:
            try:
                cursor = self._connect().cursor()
                cursor.execute("BEGIN IMMEDIATE")
                try:
                    for row in rows:
                        key = (row["source"], row["event_id"])
                        cursor.execute(_INSERT, _values(row))
                        if cursor.rowcount == 1:
                            inserted[key] = int(cursor.lastrowid or 0)
                        else:
                            seq, received_at = cursor.execute(_FIND, key).fetchone()
                            earlier[key] = (seq, _read_time(received_at))
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


def _values(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["source"],
        row["event_id"],
        row["type"],
        row["subject"],
        sqlite_time(row["time"]),
        sqlite_time(row["received_at"]),
        row["kind"],
        row["object_id"],
        row["channel"],
        orjson.dumps(row["attributes"]).decode(),
        orjson.dumps(row["data"]).decode(),
    )

