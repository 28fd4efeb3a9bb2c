"""WAL checkpoints for SQLite, off the request path.

Writers run with ``wal_autocheckpoint=0`` so that no request pays for copying the WAL back into the
database file (and the fsync that goes with it). This thread does it instead, once a second, with a
PASSIVE checkpoint that never blocks readers or writers; the WAL then restarts from its beginning
instead of growing.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from opsrail.storage._engine import SQLITE_BUSY_TIMEOUT_MS

log = logging.getLogger("opsrail.storage")


class SqliteCheckpointer:
    def __init__(self, path: str, interval_seconds: float = 1.0) -> None:
        self._path = path
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="opsrail-wal-checkpoint", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(10)
            self._thread = None
        self.checkpoint("TRUNCATE")

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int] | None:
        """Run one checkpoint; returns SQLite's (busy, wal pages, pages checkpointed), or None if it failed."""
        try:
            with sqlite3.connect(self._path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000) as connection:
                row = connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            connection.close()
            return (int(row[0]), int(row[1]), int(row[2]))
        except sqlite3.Error as exc:
            log.warning("WAL checkpoint failed", extra={"error": str(exc)})
            return None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.checkpoint()
