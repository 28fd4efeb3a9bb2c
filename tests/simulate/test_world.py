"""The simulated world and people, without I/O: determinism, canonical validity, coherent stories, drift."""

from __future__ import annotations

import statistics
from collections import Counter
from importlib import resources
from typing import Any

import pytest

from opsrail.ingest import normalise
from opsrail.model import KINDS, InvalidInput, kind_of
from opsrail.simulate import (
    Behaviour,
    Drift,
    World,
    load_tickets,
    parse_drift,
    parse_duration,
    parse_rate,
)

TYPES = {
    "com.opsrail.account.created",
    "com.opsrail.order.signed",
    "com.opsrail.implementation_task.updated",
    "com.opsrail.invoice.created",
    "com.opsrail.invoice.received",
    "com.opsrail.incident.opened",
    "com.opsrail.incident.resolved",
    "com.opsrail.quote.submitted",
    "com.opsrail.change_order.requested",
    "com.opsrail.escalation.opened",
    "com.opsrail.account.offboarded",
}


def stream(seed: int = 7, count: int = 4000, drift: Drift | None = None) -> list[dict[str, Any]]:
    return World(seed, tickets=load_tickets(), drift=drift).take(count)


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    first, again, other = stream(7, 800), stream(7, 800), stream(8, 800)
    assert first == again
    assert [e["id"] for e in first] == [f"sim-7-{n:08d}" for n in range(1, 801)]
    assert [e["data"] for e in first] != [e["data"] for e in other]
    assert not {e["id"] for e in first} & {e["id"] for e in other}


def test_every_event_is_a_valid_canonical_event_and_every_kind_of_story_happens() -> None:
    events = stream(count=6000)
    for event in events:
        normalised = normalise(event)  # raises InvalidInput naming the field on anything invalid
        kind = kind_of(event["type"])
        assert kind is not None and normalised.kind == kind
        KINDS[kind].model_validate(event["data"])
    assert {e["type"] for e in events} == TYPES
    assert len({(e["source"], e["id"]) for e in events}) == len(events)


def test_the_stories_hang_together() -> None:
    events = stream(count=6000)
    accounts: set[str] = set()
    invoices: set[str] = set()
    opened: dict[str, dict[str, Any]] = {}
    offboarded: set[str] = set()
    statuses: dict[str, list[str]] = {}
    for event in events:
        data, verb = event["data"], event["type"].rsplit(".", 1)[1]
        kind = kind_of(event["type"])
        if kind == "account" and verb == "created":
            accounts.add(data["id"])
        elif kind == "account":
            assert data["id"] in accounts
            offboarded.add(data["id"])
        elif kind == "invoice" and verb == "received":
            assert data["attributes"]["vendor"]  # a supplier's invoice to accounts payable: no customer account
        elif kind == "invoice":
            assert data["account_id"] in accounts
            invoices.add(data["id"])
        elif kind == "implementation_task":
            assert data["attributes"]["invoice_id"] in invoices  # names an invoice the world created before
            assert data["account_id"] in accounts
            statuses.setdefault(data["id"], []).append(data["status"])
            if data["status"] == "blocked":
                assert data["blocked_reason"]
        elif kind == "incident" and verb == "opened":
            assert data["account_id"] in accounts and data["account_id"] not in offboarded
            opened[data["id"]] = data
        elif kind == "incident":
            assert data["id"] in opened and data["title"] == opened[data["id"]]["title"]
        elif kind in ("order", "quote", "change_order"):
            assert data["account_id"] in accounts
    assert all(s[0] == "in_progress" and s[-1] in ("in_progress", "blocked", "done") for s in statuses.values())
    assert any(s[:3] == ["in_progress", "blocked", "done"] for s in statuses.values())
    assert any(e["data"].get("blocked_reason") == "non-standard SSO request" for e in events)
    assert any(e["data"].get("target_team") == "specialists" for e in events)
    assert any(e["data"].get("non_standard_clauses") for e in events if e["type"].endswith("quote.submitted"))


def test_incidents_carry_ticket_text_and_sev1_is_rare_with_a_credit() -> None:
    tickets = {t.text: t.topic for t in load_tickets()}
    incidents = [e["data"] for e in stream(count=8000) if e["type"] == "com.opsrail.incident.opened"]
    sev1 = [i for i in incidents if i["severity"] == 1]
    assert 0.03 < len(sev1) / len(incidents) < 0.08
    for incident in incidents:
        assert tickets[incident["description"]] == incident["category"]
        assert incident["description"].startswith(incident["title"])
        attributes = incident["attributes"]
        assert (
            attributes["premium_support"] is (attributes["tier"] == "enterprise") or attributes["tier"] == "mid_market"
        )
        assert ("credit_amount" in attributes) is (incident["severity"] == 1)
    assert all(200 <= i["attributes"]["credit_amount"] <= 9000 for i in sev1)


def test_a_drift_changes_its_segments_sev1_rate() -> None:
    drift = parse_drift("region=EU:sev1_rate=0.5")
    incidents = [e["data"] for e in stream(count=8000, drift=drift) if e["type"] == "com.opsrail.incident.opened"]
    eu = [i for i in incidents if i["segment"]["region"] == "EU"]
    rest = [i for i in incidents if i["segment"]["region"] != "EU"]
    assert abs(sum(i["severity"] == 1 for i in eu) / len(eu) - 0.5) < 0.06
    assert sum(i["severity"] == 1 for i in rest) / len(rest) < 0.08


def test_a_drift_scales_its_segments_credits_and_nothing_else() -> None:
    plain = stream(count=6000)
    scaled = stream(count=6000, drift=parse_drift("tier=enterprise:credit_scale=3"))
    compared = 0
    for before, after in zip(plain, scaled, strict=True):
        credit = before["data"].get("attributes", {}).get("credit_amount")
        if credit is None:
            assert before == after
            continue
        factor = 3 if before["data"]["segment"]["tier"] == "enterprise" else 1
        assert after["data"]["attributes"]["credit_amount"] == pytest.approx(credit * factor, abs=0.02)
        compared += factor == 3 and before["type"].endswith("incident.opened")
    assert compared >= 3


def credit_task(task_id: int, region: str, tier: str = "mid_market", kind: str = "approval") -> dict[str, Any]:
    return {
        "id": f"task_{region}_{task_id}",
        "kind": kind,
        "title": "Sev1 credit for crm:acc",
        "roles": ["finance_controller"],
        "context": {
            "run": {
                "input": {
                    "id": f"itsm:INC{task_id}",
                    "severity": 1,
                    "category": "Access",
                    "segment": {"region": region, "tier": tier},
                    "attributes": {"credit_amount": 2500.0},
                }
            }
        },
    }


def reject_rate(behaviour: Behaviour, region: str, draws: int = 3000) -> float:
    verdicts = [behaviour.verdict(credit_task(n, region), "finance_controller") for n in range(draws)]
    assert all(v.comment for v in verdicts)
    return sum(not v.approve for v in verdicts) / draws


def test_a_drift_makes_the_segments_credits_rejected_measurably_more_often() -> None:
    plain = Behaviour(7)
    drifted = Behaviour(7, parse_drift("region=EU:credit_reject=0.6"))
    assert abs(reject_rate(plain, "EU") - 0.12) < 0.03 and abs(reject_rate(plain, "US") - 0.12) < 0.03
    assert abs(reject_rate(drifted, "EU") - 0.6) < 0.04
    assert abs(reject_rate(drifted, "US") - 0.12) < 0.03


def test_people_answer_deterministically_after_realistic_delays() -> None:
    people = Behaviour(7)
    task = credit_task(1, "US")
    assert people.verdict(task, "finance_controller") == Behaviour(7).verdict(task, "finance_controller")
    approvals = [people.delay(credit_task(n, "US"), "finance_controller") for n in range(2000)]
    reviews = [people.delay(credit_task(n, "US", kind="review"), "operator") for n in range(2000)]
    assert 6 < statistics.median(approvals) < 10 and 3 < statistics.median(reviews) < 5
    assert sum(3 <= d <= 20 for d in approvals) / len(approvals) > 0.9
    slow = Behaviour(7, parse_drift("region=US:delay_scale=3"), delay_scale=0.5)
    assert slow.delay(task, "finance_controller") == pytest.approx(1.5 * people.delay(task, "finance_controller"))


def test_a_review_is_approved_when_the_topic_is_right_and_corrected_when_not() -> None:
    people = Behaviour(7)
    right = credit_task(1, "US", kind="review")
    right["context"]["recommendation"] = {"label": "Access"}
    wrong = credit_task(2, "US", kind="review")
    wrong["context"]["recommendation"] = {"label": "Hardware"}
    assert people.verdict(right, "operator").approve
    corrected = [people.verdict({**wrong, "id": f"t{n}"}, "operator") for n in range(200)]
    assert sum(not v.approve for v in corrected) > 180
    assert all(v.value == {"label": "Access"} for v in corrected if not v.approve)


def test_rates_durations_and_drifts_parse_or_say_what_is_wrong() -> None:
    assert parse_rate("20/s") == 20 and parse_rate("5") == 5 and parse_rate("300/m") == 5
    assert parse_duration("90s") == 90 and parse_duration("10m") == 600 and parse_duration("1h") == 3600
    assert parse_duration("PT10M") == 600 and parse_duration("45") == 45
    drift = parse_drift("region=eu:credit_reject=0.6")
    assert drift == Drift("region", "EU", credit_reject=0.6) and drift.spec == "region=EU:credit_reject=0.6"
    assert drift.applies({"region": "EU"}) and not drift.applies({"region": "US"}) and not drift.applies(None)
    for bad in ("fast", "0/s", "-3", "20/d"):
        with pytest.raises(InvalidInput, match="--rate"):
            parse_rate(bad)
    for bad in ("soon", "0s", "P", "10 minutes"):
        with pytest.raises(InvalidInput, match="--duration"):
            parse_duration(bad)
    for bad, message in (
        ("EU:credit_reject=0.6", "segment"),
        ("region=Mars:credit_reject=0.6", "no region"),
        ("region=EU", "changes nothing"),
        ("region=EU:credit_reject=1.5", "probability"),
        ("region=EU:credit_scale=0", "factor"),
        ("region=EU:happiness=2", "unknown knob"),
        ("region=EU:sev1_rate=lots", "number"),
    ):
        with pytest.raises(InvalidInput, match=message):
            parse_drift(bad)


def test_the_packaged_ticket_sample_is_small_and_covers_every_topic() -> None:
    tickets = load_tickets()
    assert 280 <= len(tickets) <= 320
    topics = Counter(t.topic for t in tickets)
    assert len(topics) == 8 and min(topics.values()) >= 15
    data = resources.files("opsrail.simulate").joinpath("data")
    assert len(data.joinpath("tickets_sample.csv").read_bytes()) < 150_000
    assert "CC0" in data.joinpath("SOURCE.md").read_text(encoding="utf-8")
    assert all(0 < len(t.title) <= 96 for t in tickets)
