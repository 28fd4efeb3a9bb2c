"""On PostgreSQL, event inserts commit in the order of their sequence numbers (the cursor readers rely on it).

Without that, a transaction that took an earlier number but commits later is skipped by a reader that already saw
the later one: the engine's cursor moves past it and its triggers never fire.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from opsrail.ingest import Arrival, normalise
from opsrail.storage import SqlEventStore, SqlLedgerStore, SqlRunStore
from opsrail.storage._engine import order_event_inserts, write_transaction
from opsrail.storage._tables import events
from opsrail.wiring import Container
from tests.support import cloudevent

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


# PostgreSQL only: SQLite has one writer at a time, so its commits follow its sequence numbers by construction.
ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def _row(event_id: str) -> dict[str, Any]:
    return {
        "source": "opsrail/test",
        "event_id": event_id,
        "type": "com.example.ordered",
        "subject": None,
        "time": None,
        "received_at": AT,
        "kind": None,
        "object_id": None,
        "channel": "test",
        "attributes": {},
        "data": {"n": 1},
    }


def _in_thread(call: Any) -> threading.Thread:
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def _seen_by_the_engine(container: Container) -> list[str]:
    _, batch = SqlRunStore(container.engine, container.runner.ids).events_after("order-test", 100)
    return [e.id for e in batch]


def _hold_an_earlier_event_open(container: Container, then: Any) -> None:
    """In one transaction: take a sequence number for ``early`` as every event writer does, then run ``then`` in
    another thread while this transaction stays open, and commit."""
    with write_transaction(container.engine) as conn:
        order_event_inserts(conn)
        conn.execute(events.insert(), _row("early"))
        thread = _in_thread(then)
        time.sleep(0.4)
        assert thread.is_alive(), "the second writer did not wait for the first to commit"
        assert _seen_by_the_engine(container) == []
    thread.join(10)
    assert not thread.is_alive()


@ON_POSTGRESQL
def test_ingest_waits_for_an_open_event_insert_and_numbers_after_it(container: Container) -> None:
    pg = container
    store = SqlEventStore(pg.engine)
    later = Arrival(normalise(cloudevent("later", source="opsrail/test")), AT, "api")
    _hold_an_earlier_event_open(pg, lambda: store.append([later]))
    assert _seen_by_the_engine(pg) == ["early", "later"]


@ON_POSTGRESQL
def test_a_ledger_change_waits_for_an_open_event_insert_and_numbers_after_it(container: Container) -> None:
    pg = container
    ledger = SqlLedgerStore(pg.engine)

    def change() -> None:
        ledger.apply("credit_memos", "cm-1", "acct-1", {"amount": 10}, None, [_row("later")], AT)

    _hold_an_earlier_event_open(pg, change)
    assert _seen_by_the_engine(pg) == ["early", "later"]
    with pg.engine.connect() as conn:
        seqs = conn.execute(sa.select(events.c.event_id, events.c.seq).order_by(events.c.seq)).all()
    assert [r[0] for r in seqs] == ["early", "later"]
