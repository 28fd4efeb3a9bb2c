"""The ingestion use cases against real stores (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta, timezone
from typing import Any

import orjson
import pytest

from opsrail.model import (
    Conflict,
    FieldError,
    InvalidInput,
    MappingFailed,
    NotFound,
    Unauthenticated,
    UnsupportedMediaType,
)
from opsrail.services import EventQuery
from opsrail.wiring import Container
from tests.support import FakeClock, cloudevent, incident_event


def test_a_duplicate_event_stores_nothing_new(container: Container, clock: FakeClock) -> None:
    service = container.ingestion
    body = orjson.dumps(incident_event("dup-1"))
    first = service.ingest_single(body)
    clock.advance(hours=1)
    second = service.ingest_single(body)
    assert first.status == "accepted" and second.status == "duplicate"
    assert second.as_dict() == first.as_dict()
    assert service.events.count() == 1


def test_a_bad_event_is_dead_lettered_with_every_path(container: Container) -> None:
    service = container.ingestion
    raw = incident_event(severity=7)
    del raw["source"]
    body = orjson.dumps(raw)
    with pytest.raises(InvalidInput) as info:
        service.ingest_single(body)
    letter = service.dead_letters.get(info.value.extra["dead_letter_id"])
    assert letter is not None
    assert letter.body == body and letter.channel == "api" and letter.status == "pending"
    assert [e["path"] for e in letter.errors] == ["$.source", "$.data.severity"]
    assert service.events.count() == 0


def test_a_batch_accepts_the_good_and_keeps_the_bad(container: Container) -> None:
    service = container.ingestion
    service.ingest_single(orjson.dumps(cloudevent("seen")))
    lines = [
        orjson.dumps(cloudevent("b1")),
        b"{broken",
        orjson.dumps(cloudevent("seen")),
        orjson.dumps(incident_event("b4", severity=0)),
        orjson.dumps(incident_event("b5")),
    ]
    outcome = service.ingest_batch(b"\n".join(lines), "application/x-ndjson")
    assert [r.status for r in outcome.results] == ["accepted", "rejected", "duplicate", "rejected", "accepted"]
    assert (outcome.count("accepted"), outcome.count("duplicate"), outcome.count("rejected")) == (2, 1, 2)
    rejected = [r for r in outcome.results if r.status == "rejected"]
    assert rejected[1].errors[0]["path"] == "$[3].data.severity"
    letter = service.dead_letters.get(rejected[0].dead_letter_id or "")
    assert letter is not None and letter.body == b"{broken"
    assert service.events.count() == 3


def test_vendor_payloads_are_mapped_to_canonical_events(container: Container) -> None:
    service = container.ingestion
    alert = {
        "version": "4",
        "status": "firing",
        "receiver": "opsrail",
        "groupKey": '{}:{alertname="CheckoutDown"}',
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "CheckoutDown", "severity": "critical", "service": "checkout"},
                "annotations": {"summary": "Checkout error rate above 20%"},
                "startsAt": "2026-01-05T08:59:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus/graph",
                "fingerprint": "c0ffee01",
            }
        ],
    }
    receipts = service.ingest_vendor("alertmanager", orjson.dumps(alert), "application/json", {})
    assert [r.status for r in receipts] == ["accepted"]
    again = service.ingest_vendor("alertmanager", orjson.dumps(alert), "application/json", {})
    assert [r.status for r in again] == ["duplicate"]
    [stored] = service.events.find(EventQuery(kind="incident"))
    assert stored.type == "com.opsrail.incident.opened"
    assert stored.data["severity"] == 1 and stored.data["title"] == "Checkout error rate above 20%"
    assert stored.channel == "ingest:alertmanager"


def test_an_unknown_source_is_dead_lettered_too(container: Container) -> None:
    with pytest.raises(NotFound) as info:
        container.ingestion.ingest_vendor("pagerduty", b"{}", "application/json", {"x-custom": "1"})
    letter = container.ingestion.dead_letters.get(info.value.extra["dead_letter_id"])
    assert letter is not None and letter.source == "pagerduty" and letter.headers == {"x-custom": "1"}


class _Acme:
    """A mapper that can be 'fixed', as a deployment would fix a mapping, to test replay."""

    name = "acme"
    description = "test source"

    def __init__(self) -> None:
        self.fixed = False

    def map(self, payload: Any, headers: Mapping[str, str]) -> list[dict[str, Any]]:
        if not self.fixed:
            raise MappingFailed("unknown acme payload", errors=[FieldError("$.kind", "not understood", "unknown")])
        return [cloudevent(id=f"acme-{payload['n']}", source="acme", data=payload)]


def test_replay_succeeds_once_the_mapping_is_fixed(container: Container) -> None:
    service = container.ingestion
    acme = _Acme()
    service.mappers = {**service.mappers, "acme": acme}
    with pytest.raises(MappingFailed) as info:
        service.ingest_vendor("acme", b'{"n": 7, "kind": "odd"}', "application/json", {})
    letter_id = info.value.extra["dead_letter_id"]
    with pytest.raises(MappingFailed):
        service.replay(letter_id)
    letter = service.dead_letters.get(letter_id)
    assert letter is not None and letter.attempts == 1 and letter.status == "pending"

    acme.fixed = True
    receipts = service.replay(letter_id)
    assert [(r.id, r.status) for r in receipts] == [("acme-7", "accepted")]
    letter = service.dead_letters.get(letter_id)
    assert letter is not None and letter.status == "replayed" and letter.attempts == 2
    with pytest.raises(Conflict, match="already replayed"):
        service.replay(letter_id)
    with pytest.raises(NotFound):
        service.replay("dl_missing")


def test_tokens_authenticate_until_revoked(container: Container, clock: FakeClock) -> None:
    tokens = container.tokens
    record, secret = tokens.create("operator", "ops")
    assert tokens.authenticate(secret).id == record.id
    with pytest.raises(Unauthenticated):
        tokens.authenticate(secret + "x")
    with pytest.raises(Unauthenticated):
        tokens.authenticate(None)
    tokens.revoke(record.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        tokens.authenticate(secret)
    with pytest.raises(InvalidInput, match="unknown role"):
        tokens.create("superuser")
    expiring, secret2 = tokens.create("service", expires_at=clock.now() + timedelta(minutes=1))
    clock.advance(minutes=2)
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.authenticate(secret2)
    assert {t.id for t in tokens.all()} == {record.id, expiring.id}


def test_nul_characters_are_refused_with_their_path(container: Container) -> None:
    body = orjson.dumps(incident_event("nul-1", title="bad\x00title"))
    with pytest.raises(InvalidInput) as info:
        container.ingestion.ingest_single(body)
    assert [e.path for e in info.value.errors] == ["$.data.title"]
    outcome = container.ingestion.ingest_batch(
        b"\n".join([orjson.dumps(cloudevent("n2")), body]), "application/x-ndjson"
    )
    assert [r.status for r in outcome.results] == ["accepted", "rejected"]
    assert outcome.results[1].errors[0]["path"] == "$[1].data.title"


def test_a_whole_batch_dead_letter_replays_as_a_batch(container: Container) -> None:
    service = container.ingestion
    body = b"\n".join(orjson.dumps(cloudevent(f"w{n}")) for n in range(3))
    with pytest.raises(UnsupportedMediaType) as info:
        service.ingest_batch(body, "text/plain")
    receipts = service.replay(info.value.extra["dead_letter_id"])
    assert [(r.id, r.status) for r in receipts] == [("w0", "accepted"), ("w1", "accepted"), ("w2", "accepted")]


def test_since_is_compared_in_utc(container: Container, clock: FakeClock) -> None:
    service = container.ingestion
    service.ingest_single(orjson.dumps(cloudevent("early")))
    clock.advance(hours=2)
    service.ingest_single(orjson.dumps(cloudevent("late")))
    one_hour_later_in_paris = (clock.now() - timedelta(hours=1)).astimezone(timezone(timedelta(hours=1)))
    found = service.events.find(EventQuery(since=one_hour_later_in_paris))
    assert [e.id for e in found] == ["late"]
