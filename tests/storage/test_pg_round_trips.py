"""PostgreSQL round trips and plans: the event appender's own connection, pings only after idle, reads without a
transaction, claims planned for their values."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

import opsrail.storage._engine as engine_module
from opsrail.ingest import Arrival, Receipt, normalise
from opsrail.storage import SqlEventStore, SqlRunStore, create_engine
from opsrail.storage._pg_append import PostgresAppender
from opsrail.storage._tables import events
from tests.support import SequentialIds, cloudevent

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _arrival(event_id: str, at: datetime = AT, **extra: Any) -> Arrival:
    return Arrival(normalise(cloudevent(event_id, source="opsrail/test", **extra)), at, "api")


def _terminate(pid: int, url: str) -> None:
    plain = sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    created = create_engine(database_url)
    yield created
    created.dispose()


@ON_POSTGRESQL
def test_a_group_is_stored_once_with_receipts_for_repeats_inside_it_and_before_it(engine: sa.Engine) -> None:
    store = SqlEventStore(engine)
    assert isinstance(store._appender, PostgresAppender)
    first = store.append([_arrival("a", subject="s-1", data={"n": 1})])
    later = AT + timedelta(minutes=5)
    receipts = store.append([_arrival("b", later), _arrival("a", later), _arrival("b", later), _arrival("c", later)])
    assert [(r.id, r.status) for r in receipts] == [
        ("b", "accepted"),
        ("a", "duplicate"),
        ("b", "duplicate"),
        ("c", "accepted"),
    ]
    assert receipts[1].seq == first[0].seq and receipts[1].received_at == AT  # the first arrival's receipt
    assert receipts[2].seq == receipts[0].seq
    assert receipts[0].seq is not None and receipts[3].seq is not None
    assert receipts[0].seq < receipts[3].seq  # numbered in arrival order
    stored = store.get("opsrail/test", "a")
    assert stored is not None and stored.subject == "s-1" and stored.data == {"n": 1}
    assert store.count() == 3


@ON_POSTGRESQL
def test_a_server_side_error_fails_only_its_group_and_the_connection_stays_usable(engine: sa.Engine) -> None:
    store = SqlEventStore(engine)
    with pytest.raises(sa.exc.DBAPIError):  # PostgreSQL text cannot hold NUL: the server refuses the whole group
        store.append([_arrival("good-1"), _arrival("bad\x00id")])
    assert store.count() == 0
    assert [r.status for r in store.append([_arrival("good-1")])] == ["accepted"]


@ON_POSTGRESQL
def test_a_connection_the_server_dropped_is_replaced_and_the_group_written(
    engine: sa.Engine, database_url: str
) -> None:
    store = SqlEventStore(engine)
    store.append([_arrival("before")])
    appender = store._appender
    assert isinstance(appender, PostgresAppender) and appender._connection is not None
    _terminate(appender._connection.info.backend_pid, database_url)
    receipts = store.append([_arrival("after")])
    assert [r.status for r in receipts] == ["accepted"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 2


@ON_POSTGRESQL
def test_a_pooled_connection_idle_long_enough_is_pinged_and_replaced_when_dead(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        _terminate(pid, database_url)
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()


@ON_POSTGRESQL
def test_a_connection_used_a_moment_ago_is_not_pinged(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    statements: list[str] = []
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
        original = engine.dialect.do_ping

        def counting_ping(connection: Any) -> bool:
            statements.append("ping")
            return original(connection)

        engine.dialect.do_ping = counting_ping  # type: ignore[method-assign,assignment]
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 2"))
        assert statements == ["SELECT 2"]
    finally:
        engine.dispose()


@ON_POSTGRESQL
def test_run_store_reads_leave_no_transaction_open(engine: sa.Engine) -> None:
    store = SqlRunStore(engine, SequentialIds())
    with store._autocommit.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        driver = conn.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        assert driver.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert store.events_after("pg-test", 10) == (0, [])
    with engine.connect() as conn:  # the engine's own connections still open transactions for writers
        conn.execute(sa.text("SELECT 1"))
        driver = conn.connection.driver_connection
        assert isinstance(driver, psycopg.Connection)
        assert driver.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS


@ON_POSTGRESQL
def test_a_batch_that_starts_nothing_moves_the_cursor_forward_only(engine: sa.Engine) -> None:
    store = SqlRunStore(engine, SequentialIds())
    SqlEventStore(engine).append([_arrival(f"e{n}") for n in range(3)])
    position, batch = store.events_after("pg-test", 10)
    assert position == 0 and [e.id for e in batch] == ["e0", "e1", "e2"]
    assert store.start_triggered([], ("pg-test", batch[1].seq)) == set()
    position, batch_after = store.events_after("pg-test", 10)
    assert position == batch[1].seq and [e.id for e in batch_after] == ["e2"]
    store.start_triggered([], ("pg-test", batch[0].seq))  # another worker's older batch: never moves it back
    assert store.events_after("pg-test", 10)[0] == batch[1].seq
    store.start_triggered([], ("pg-test", batch[2].seq))
    assert store.events_after("pg-test", 10) == (batch[2].seq, [])


@ON_POSTGRESQL
def test_the_workers_polling_queries_stay_unprepared_while_others_are_prepared(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    try:
        store = SqlRunStore(engine, SequentialIds())
        for _ in range(8):  # psycopg prepares a statement from its fifth run on a connection
            store.claim("worker-1", AT, 30.0, 10)
            store.due(AT, 10)
            store.sla_due(AT, 10)
            store.waiting_for_event(10)
            store.children_finished(10)
            store.events_after("pg-test", 10)
        with engine.connect() as conn:
            prepared = conn.execute(sa.text("SELECT statement FROM pg_prepared_statements")).scalars().all()
        assert any("FROM events" in text for text in prepared)
        polling = ("SKIP LOCKED", "due_at <=", "sla_warn_at", "waiting_for", "parent_step")
        assert not any(marker in text for text in prepared for marker in polling)
    finally:
        engine.dispose()


@ON_POSTGRESQL
def test_appending_on_the_event_loop_gives_the_same_receipts(engine: sa.Engine, database_url: str) -> None:
    store = SqlEventStore(engine)
    assert store.appends_async
    later = AT + timedelta(minutes=5)

    async def first() -> list[Receipt]:
        return await store.append_async([_arrival("a", subject="s-1", data={"n": 1})])

    async def second() -> list[Receipt]:
        return await store.append_async([_arrival("b", later), _arrival("a", later), _arrival("b", later)])

    stored_first = asyncio.run(first())
    receipts = asyncio.run(second())  # another event loop: the connection made on the first is replaced
    assert [(r.id, r.status) for r in receipts] == [("b", "accepted"), ("a", "duplicate"), ("b", "duplicate")]
    assert receipts[1].seq == stored_first[0].seq and receipts[1].received_at == AT
    assert receipts[2].seq == receipts[0].seq
    appender = store._appender
    assert isinstance(appender, PostgresAppender) and appender._async is not None

    async def after_a_drop() -> list[Receipt]:
        await store.append_async([_arrival("c0")])  # on this loop's connection, which the server then drops
        assert appender._async is not None
        _terminate(appender._async.info.backend_pid, database_url)
        return await store.append_async([_arrival("c")])

    assert [r.status for r in asyncio.run(after_a_drop())] == ["accepted"]

    async def refused() -> None:
        await store.append_async([_arrival("d"), _arrival("bad\x00id")])

    with pytest.raises(sa.exc.DBAPIError):
        asyncio.run(refused())
    assert [r.status for r in asyncio.run(first())] == ["duplicate"]
    assert store.count() == 4
    store.close()
