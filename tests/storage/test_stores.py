"""Repository contract tests, run on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from opsrail.ingest import Arrival, DeadLetter, normalise
from opsrail.services import ApiToken, EventQuery
from opsrail.storage import (
    EXPRESSION_INDEXES,
    SqlDeadLetterStore,
    SqlEventStore,
    SqlTokenStore,
    current_revision,
    head_revision,
    metadata,
)
from opsrail.wiring import Container
from tests.support import FakeClock, cloudevent, incident_event


def _arrival(raw: dict[str, object], clock: FakeClock, channel: str = "api") -> Arrival:
    return Arrival(normalise(raw), clock.now(), channel)


def test_migrations_create_exactly_the_declared_tables(engine: sa.Engine) -> None:
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("runs")}
    # Expression indexes differ by dialect, so the metadata cannot declare them; the migration must create them.
    assert [d for d in diff if not (d[0] == "remove_index" and d[1].name in EXPRESSION_INDEXES)] == []
    if engine.dialect.name == "postgresql":
        assert set(EXPRESSION_INDEXES) <= indexes


def test_append_dedupes_across_and_within_groups(engine: sa.Engine, clock: FakeClock) -> None:
    store = SqlEventStore(engine)
    first = store.append([_arrival(incident_event("e1"), clock), _arrival(cloudevent("e2"), clock)])
    assert [r.status for r in first] == ["accepted", "accepted"]
    first_seen = clock.now()
    clock.advance(minutes=5)
    again = store.append(
        [_arrival(incident_event("e1"), clock), _arrival(cloudevent("e3"), clock), _arrival(cloudevent("e3"), clock)]
    )
    assert [r.status for r in again] == ["duplicate", "accepted", "duplicate"]
    assert again[0].received_at == first_seen  # the first receipt, not a new one
    assert again[0].seq == first[0].seq
    assert again[2].seq == again[1].seq
    assert store.count() == 3


def test_same_id_from_another_source_is_a_different_event(engine: sa.Engine, clock: FakeClock) -> None:
    store = SqlEventStore(engine)
    receipts = store.append(
        [_arrival(cloudevent("x", source="a"), clock), _arrival(cloudevent("x", source="b"), clock)]
    )
    assert [r.status for r in receipts] == ["accepted", "accepted"]


def test_list_filters_and_pages_newest_first(engine: sa.Engine, clock: FakeClock) -> None:
    store = SqlEventStore(engine)
    for n in range(5):
        clock.advance(seconds=1)
        store.append([_arrival(incident_event(f"i{n}"), clock), _arrival(cloudevent(f"c{n}"), clock)])
    incidents = store.find(EventQuery(kind="incident", limit=3))
    assert [e.id for e in incidents] == ["i4", "i3", "i2"]
    rest = store.find(EventQuery(kind="incident", before_seq=incidents[-1].seq, limit=3))
    assert [e.id for e in rest] == ["i1", "i0"]
    assert incidents[0].data["severity"] == 1 and incidents[0].object_id == "acme:INC-1"
    assert incidents[0].received_at.tzinfo is not None
    assert len(store.find(EventQuery(type="com.example.thing.happened", limit=50))) == 5
    assert len(store.find(EventQuery(since=clock.now() - timedelta(seconds=1), limit=50))) == 4


def test_event_attributes_round_trip(engine: sa.Engine, clock: FakeClock) -> None:
    store = SqlEventStore(engine)
    raw = cloudevent(
        "t1",
        time="2026-01-05T08:00:00+01:00",
        traceparent="00-abc-01",
        datacontenttype="application/json",
        data={"nested": {"a": [1, None, "x"]}},
    )
    store.append([_arrival(raw, clock)])
    stored = store.get("test/suite", "t1")
    assert stored is not None
    assert stored.time is not None and stored.time.utcoffset() == timedelta(0)
    assert stored.time.hour == 7
    assert stored.attributes == {"traceparent": "00-abc-01", "datacontenttype": "application/json"}
    assert stored.data == {"nested": {"a": [1, None, "x"]}}
    assert stored.as_cloudevent()["traceparent"] == "00-abc-01"


def test_a_group_is_numbered_in_arrival_order_and_bare_events_read_back_bare(
    engine: sa.Engine, clock: FakeClock
) -> None:
    store = SqlEventStore(engine)
    receipts = store.append([_arrival(cloudevent(f"order-{n}"), clock) for n in range(50)])
    seqs = [r.seq or 0 for r in receipts]
    assert seqs == sorted(seqs) and len(set(seqs)) == 50 and min(seqs) > 0
    bare = store.get("test/suite", "order-0")
    assert bare is not None and bare.data is None and bare.attributes == {} and bare.time is None
    assert bare.subject is None and bare.channel == "api"


def test_dead_letters_keep_bytes_and_record_replays(engine: sa.Engine, clock: FakeClock) -> None:
    store = SqlDeadLetterStore(engine)
    body = b"\xff\xfe not utf-8 {"
    store.add(
        [
            DeadLetter(
                id="dl_1",
                received_at=clock.now(),
                channel="api",
                source=None,
                content_type="application/json",
                headers={"x-request-id": "r1"},
                body=body,
                body_bytes=len(body),
                truncated=False,
                reason="not JSON",
                errors=[{"path": "$", "message": "bad", "code": "json"}],
            )
        ]
    )
    letter = store.get("dl_1")
    assert letter is not None and letter.body == body and letter.headers == {"x-request-id": "r1"}
    store.record_attempt("dl_1", replayed_at=None, receipts=None, reason="still bad", errors=[])
    store.record_attempt("dl_1", replayed_at=clock.now(), receipts=[{"id": "e"}], reason=None, errors=None)
    letter = store.get("dl_1")
    assert letter is not None
    assert (letter.status, letter.attempts, letter.reason, letter.replay_receipts) == (
        "replayed",
        2,
        "still bad",
        [{"id": "e"}],
    )
    assert [d.id for d in store.find("replayed", 10, None)] == ["dl_1"]
    assert store.find("pending", 10, None) == []


def test_tokens_are_found_by_hash_and_revoked_once(engine: sa.Engine, clock: FakeClock) -> None:
    store = SqlTokenStore(engine)
    store.add(ApiToken(id="tok_1", name="ci", role="service", created_at=clock.now()), "h" * 64)
    found = store.by_hash("h" * 64)
    assert found is not None and found.role == "service"
    assert store.by_hash("x" * 64) is None
    assert store.revoke("tok_1", clock.now()) is True
    assert store.revoke("tok_1", clock.now()) is False


def test_container_builds_on_both_databases(container: Container) -> None:
    container.health.ping()
    assert container.health.schema_is_current()
