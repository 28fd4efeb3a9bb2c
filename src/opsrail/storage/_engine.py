"""Creating the database engine: SQLite in WAL mode with a busy timeout, or PostgreSQL with a pool."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

from opsrail.model import Unavailable

SQLITE_BUSY_TIMEOUT_MS = 5000
IMMEDIATE_OPTION = "opsrail_immediate"


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(url: str, *, sqlite_synchronous: str = "NORMAL", pool_size: int = 10) -> sa.Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=pool_size,
            max_overflow=pool_size,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, decide when transactions begin, so BEGIN IMMEDIATE works.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # Writers take the lock up front: a deferred transaction that later writes can fail with
            # SQLITE_BUSY at once, an immediate one waits out the busy timeout instead. Readers stay
            # deferred so they never wait for a writer (WAL readers see the last commit). The statement goes
            # to the driver directly: through SQLAlchemy's execution path it cost more than SQLite's own work,
            # on every transaction, reads included; a failure is raised as SQLAlchemy would have raised it.
            statement = "BEGIN IMMEDIATE" if conn.get_execution_options().get(IMMEDIATE_OPTION) else "BEGIN"
            try:
                conn.connection.driver_connection.execute(statement)  # type: ignore[union-attr]
            except sqlite3.Error as exc:
                raise sa.exc.DBAPIError.instance(statement, (), exc, sqlite3.Error) from exc

        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.get_driver_name() == "psycopg":
            _need_psycopg()
        engine = sa.create_engine(
            parsed,
            json_serializer=_json_dumps,
            json_deserializer=lambda v: v if not isinstance(v, (str, bytes)) else orjson.loads(v),
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _ping_when_idle(engine)
        return engine
    raise Unavailable(f"unsupported database {parsed.get_backend_name()!r}", hint="use SQLite or PostgreSQL")


PING_AFTER_IDLE_SECONDS = 1.0


def _ping_when_idle(engine: sa.Engine) -> None:
    """Check a pooled PostgreSQL connection before use when it has sat in the pool for a while.

    SQLAlchemy's ``pool_pre_ping`` checks on every checkout: one more round trip on every transaction, which for
    a busy worker was a fifth of its round trips. A connection used a moment ago was working a moment ago; one idle
    for ``PING_AFTER_IDLE_SECONDS`` or more (the server may have restarted or closed it meanwhile) is pinged, and a
    dead one is replaced before anyone sees it. A failure on a connection that passed without a ping still marks
    the pool's older connections stale, as SQLAlchemy does for any disconnect.
    """

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["opsrail_returned"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("opsrail_returned")
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return  # new, or used a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"connection failed its ping: {exc}") from exc
        if not alive:
            raise sa.exc.DisconnectionError("connection failed its ping")


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction that will write: on SQLite it holds the write lock from its first statement."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{IMMEDIATE_OPTION: True})
        with conn.begin():
            yield conn


EVENT_ORDER_LOCK = 0x6F70737261696C  # "opsrail": the advisory lock ordering event inserts on PostgreSQL
_EVENT_ORDER = sa.text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=EVENT_ORDER_LOCK)


def order_event_inserts(conn: sa.Connection) -> None:
    """Make this transaction's event inserts commit in the order of their sequence numbers (PostgreSQL).

    Readers follow the events table by ``seq`` with a cursor. On PostgreSQL two transactions may take sequence
    numbers in one order and commit in the other; a reader that sees the later number first moves its cursor past
    the earlier one, which then never triggers anything. Every transaction that inserts events takes this lock
    first, before any other write, and holds it to its commit, so numbers are taken and committed in one order.
    Taking it first also keeps it out of deadlocks: a transaction waiting for it holds nothing yet. SQLite has a
    single writer, so it needs nothing.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(_EVENT_ORDER)


def translate_errors(exc: sa.exc.SQLAlchemyError) -> Unavailable:
    return Unavailable(
        f"the database is not available: {type(getattr(exc, 'orig', None) or exc).__name__}",
        hint="check OPSRAIL_DATABASE_URL and that the server runs; run `opsrail db upgrade` on a new database",
    )


def _need_psycopg() -> None:
    """PostgreSQL is reached through psycopg 3, the optional `postgres` extra: say so instead of failing later."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable(
            "PostgreSQL needs the psycopg driver, which is not installed",
            hint="install Opsrail with its postgres extra: pip install 'opsrail[postgres]'",
        ) from None


def translate_driver_error(exc: Exception) -> Unavailable:
    return Unavailable(
        f"the database is not available: {type(exc).__name__}: {exc}",
        hint="check OPSRAIL_DATABASE_URL, free disk space and file permissions",
    )
