"""The seed KPIs on real stores, from hand-computed scenarios: events sent with explicit times, runs, tasks and
decision records made by the engine and the services, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from opsrail.model import InvalidInput
from opsrail.services._kpis import KPI_NAMES, KpiService
from opsrail.storage._kpis import SqlKpiStore
from opsrail.wiring import Container
from tests.support import FakeClock, cloudevent, drain

JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)


def kpis(container: Container, clock: FakeClock) -> KpiService:
    return KpiService(SqlKpiStore(container.engine), clock)


def at(day: int, hour: int = 0, minute: int = 0, month: int = 1, year: int = 2026) -> str:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).isoformat()


def send(container: Container, event_id: str, kind_verb: str, data: dict[str, Any], time: str) -> None:
    event = cloudevent(id=event_id, source="test/kpis", type=f"com.opsrail.{kind_verb}", data=data, time=time)
    container.ingestion.ingest_single(orjson.dumps(event))


def accounts(container: Container) -> None:
    # acme moved from the US to the EU: its latest segment counts.
    acme = {"id": "acme", "name": "Acme"}
    send(
        container,
        "a1",
        "account.created",
        {**acme, "segment": {"region": "US", "tier": "smb"}},
        at(1, month=12, year=2025),
    )
    send(
        container,
        "a2",
        "account.updated",
        {**acme, "segment": {"region": "EU", "channel": "direct", "tier": "enterprise"}},
        at(15, month=12, year=2025),
    )
    globex = {"id": "globex", "name": "Globex", "segment": {"region": "US", "channel": "partner", "tier": "smb"}}
    send(container, "a3", "account.created", globex, at(1, month=12, year=2025))


def task(container: Container, event_id: str, task_id: str, account: str, status: str, when: str, **extra: Any) -> None:
    data = {"id": task_id, "name": task_id, "account_id": account, "status": status, **extra}
    send(container, event_id, "implementation_task.updated", data, when)


def test_event_kpis_provisioning_escalation_billing_and_credit_cycle(container: Container, clock: FakeClock) -> None:
    accounts(container)
    # Provisioning. ord-1 (acme, EU): both of its tasks done, the last at +10 h.
    send(container, "o1", "order.signed", {"id": "ord-1", "account_id": "acme", "status": "signed"}, at(1))
    task(container, "t1", "it-1", "acme", "in_progress", at(1, 2), order_id="ord-1")
    task(container, "t2", "it-1", "acme", "done", at(1, 6), order_id="ord-1")
    task(container, "t3", "it-2", "acme", "pending", at(1, 1), order_id="ord-1")
    task(container, "t4", "it-2", "acme", "done", at(1, 10), order_id="ord-1")
    # ord-2 (globex, US): no task names it; the account's first task done after the signing, at +30 h.
    send(container, "o2", "order.signed", {"id": "ord-2", "account_id": "globex", "status": "signed"}, at(1))
    task(container, "t5", "it-3", "globex", "done", at(31, 12, month=12, year=2025))  # before the order
    task(container, "t6", "it-4", "globex", "done", at(2, 6))
    task(container, "t7", "it-5", "globex", "done", at(3, 6))
    # ord-3 (acme): one of its tasks is still in progress, so it is not provisioned.
    send(container, "o3", "order.signed", {"id": "ord-3", "account_id": "acme", "status": "signed"}, at(2))
    task(container, "t8", "it-6", "acme", "done", at(2, 5), order_id="ord-3")
    task(container, "t9", "it-7", "acme", "done", at(2, 3), order_id="ord-3")
    task(container, "t10", "it-7", "acme", "in_progress", at(2, 4), order_id="ord-3")
    # ord-4 (initech, no account events): provisioned in 24 h, before the window.
    send(
        container,
        "o4",
        "order.signed",
        {"id": "ord-4", "account_id": "initech", "status": "signed"},
        at(20, month=12, year=2025),
    )
    task(container, "t11", "it-8", "initech", "done", at(21, month=12, year=2025), order_id="ord-4")

    # Escalation: inc-a (acme) escalated after 20 min, inc-b (globex) after 40; inc-c never.
    for event_id, incident, account, opened in (
        ("i1", "inc-a", "acme", at(3, 10)),
        ("i2", "inc-b", "globex", at(3, 12)),
    ):
        send(container, event_id, "incident.opened", {"id": incident, "title": "down", "account_id": account}, opened)
    send(container, "i3", "incident.opened", {"id": "inc-c", "title": "slow", "account_id": "globex"}, at(3, 13))
    escalation = {"reason": "no progress", "level": 2}
    send(container, "e1", "escalation.opened", {**escalation, "id": "esc-1", "incident_id": "inc-a"}, at(3, 10, 20))
    send(container, "e2", "escalation.opened", {**escalation, "id": "esc-2", "incident_id": "inc-a"}, at(3, 11))
    send(container, "e3", "escalation.opened", {**escalation, "id": "esc-3", "incident_id": "inc-b"}, at(3, 12, 40))

    # Billing exceptions: inv-1 held twice (acme), inv-2 held before the window; credits; a change order.
    invoice = {"status": "on_hold", "amount_due": 100, "currency": "EUR", "on_hold": True}
    send(container, "h1", "invoice.held", {**invoice, "id": "inv-1", "account_id": "acme"}, at(3))
    send(container, "h2", "invoice.held", {**invoice, "id": "inv-1", "account_id": "acme"}, at(4))
    send(
        container, "h3", "invoice.held", {**invoice, "id": "inv-2", "account_id": "globex"}, at(20, month=12, year=2025)
    )
    credit = {"amount": 50, "currency": "USD", "reason": "outage", "status": "requested"}
    send(container, "c1", "credit.created", {**credit, "id": "cm-2", "account_id": "globex"}, at(2))
    send(
        container,
        "c2",
        "credit.approved",
        {**credit, "id": "cm-2", "account_id": "globex", "status": "approved"},
        at(3),
    )
    send(container, "c3", "credit.created", {**credit, "id": "cm-3", "account_id": "globex"}, at(4))
    change = {"id": "co-1", "account_id": "initech", "description": "more seats", "amount": 10, "currency": "USD"}
    send(container, "x1", "change_order.created", change, at(4))
    # cm-1 goes through the built-in ledger: created, then approved 6 h later.
    clock.current = datetime(2026, 1, 3, 8, 0, tzinfo=UTC)
    container.ledger.create(
        "credit-memos", {"id": "cm-1", "account_id": "acme", "amount": "20", "currency": "EUR", "reason": "sla"}
    )
    clock.advance(hours=6)
    container.ledger.act("credit-memos", "cm-1", "approve", {"by": "fiona"})
    clock.current = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    report = kpis(container, clock).compute(JAN_1, None, "region")
    assert report["window"] == {
        "since": "2026-01-01T00:00:00+00:00",
        "until": None,
        "by": "region",
        "as_of": "2026-01-05T09:00:00+00:00",
    }
    found = report["kpis"]
    assert found["time_to_provision_hours"] == {
        "value": 20.0,
        "unit": "hours",
        "n": 2,
        "p50": 20.0,
        "p90": 28.0,
        "by": {
            "EU": {"value": 10.0, "n": 1, "p50": 10.0, "p90": 10.0},
            "US": {"value": 30.0, "n": 1, "p50": 30.0, "p90": 30.0},
        },
    }
    escalate = found["time_to_escalate_minutes"]
    assert (escalate["value"], escalate["n"], escalate["p50"], escalate["p90"]) == (30.0, 2, 30.0, 38.0)
    assert {name: figures["value"] for name, figures in escalate["by"].items()} == {"EU": 20.0, "US": 40.0}
    assert found["billing_exceptions"] == {
        "value": 6,
        "unit": "exceptions",
        "n": 6,
        "by_kind": {"invoice_held": 2, "credit_memo": 3, "change_order": 1},
        "by": {
            "EU": {"value": 3, "n": 3, "by_kind": {"invoice_held": 2, "credit_memo": 1, "change_order": 0}},
            "US": {"value": 2, "n": 2, "by_kind": {"invoice_held": 0, "credit_memo": 2, "change_order": 0}},
            "unknown": {"value": 1, "n": 1, "by_kind": {"invoice_held": 0, "credit_memo": 0, "change_order": 1}},
        },
    }
    cycle = found["credit_approval_cycle_hours"]
    assert (cycle["value"], cycle["n"], cycle["p50"], cycle["p90"]) == (15.0, 2, 15.0, 22.2)
    assert cycle["tasks"] == {"value": None, "n": 0, "p50": None, "p90": None}
    assert {name: figures["value"] for name, figures in cycle["by"].items()} == {"EU": 6.0, "US": 24.0}
    # Nothing run-based happened: the rates have nothing to divide.
    assert found["sla_breach_rate"] == {"value": None, "unit": "ratio", "n": 0, "breached": 0, "by": {}}
    assert found["manual_touches"]["value"] == 0 and found["manual_touches_per_run"]["value"] is None
    assert tuple(found) == KPI_NAMES

    # Without a start, ord-4 (24 h, before the window) counts as well; by tier, acme is enterprise now.
    everything = kpis(container, clock).compute(None, None, "tier")["kpis"]["time_to_provision_hours"]
    assert (everything["value"], everything["n"]) == (pytest.approx(64 / 3, abs=1e-4), 3)
    assert {name: figures["n"] for name, figures in everything["by"].items()} == {
        "enterprise": 1,
        "smb": 1,
        "unknown": 1,
    }
    # A window that ends before the approvals: the credits are not approved yet, the holds of Jan 3 count.
    early = kpis(container, clock).compute(JAN_1, datetime(2026, 1, 3, 12, 0, tzinfo=UTC))["kpis"]
    assert early["credit_approval_cycle_hours"]["n"] == 1  # cm-2, approved on Jan 3 at 00:00
    assert early["billing_exceptions"]["by_kind"] == {"invoice_held": 1, "credit_memo": 2, "change_order": 0}
    assert "by" not in early["billing_exceptions"]


PLAYBOOKS = {
    "desk.yaml": """
id: incident-desk
version: 1
trigger:
  events: [com.opsrail.incident.opened]
steps:
  - id: approve
    approval: {roles: [approver]}
    sla: {target: PT1H}
""",
    "triage.yaml": """
id: triage
version: 1
steps:
  - id: tier
    decide: credit-tier
    with: {amount: "${ run.input.amount }"}
""",
    "note.yaml": """
id: note-review
version: 1
steps:
  - id: check
    decide: note-check
    with: {note: "${ run.input.note }"}
""",
}

TABLES = {
    "credit.yaml": """
name: credit-tier
version: 1
inputs:
  amount: {type: double}
outputs:
  band: {type: string}
rules:
  - id: large
    when: "amount > 500.0"
    then: {band: "large"}
  - id: small
    when: "true"
    then: {band: "small"}
""",
    "note.yaml": """
name: note-check
version: 1
inputs:
  note: {type: string}
outputs:
  ok: {type: bool}
rules:
  - id: always
    when: "size(note) > 0"
    then: {ok: true}
""",
}

POLICIES = """
decisions:
  credit-tier:
    tier: approval
    approval:
      - when: "output.band == 'small'"
        tier: autonomous
      - roles: [approver]
  note-check:
    tier: advisory
    review: {roles: [operator]}
"""


def open_task(container: Container, run_id: str) -> dict[str, Any]:
    [found] = [t for t in container.automation.tasks(limit=1000) if t["run_id"] == run_id]
    return found


def test_run_kpis_sla_touches_escalation_and_decision_rates(
    container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    accounts(container)
    for name, text in TABLES.items():
        (tmp_path / f"table-{name}").write_text(text)
        container.decisions.publish_table(tmp_path / f"table-{name}", "ops")
    (tmp_path / "policies.yaml").write_text(POLICIES)
    container.decisions.apply_policies(tmp_path / "policies.yaml", "ops")
    for name, text in PLAYBOOKS.items():
        (tmp_path / name).write_text(text)
        container.automation.publish(tmp_path / name, "ops")

    # 09:00: two incidents opened at 08:50 and 08:30 start runs whose approval tasks open now (10 and 30 min);
    # inc-1 was escalated by an event at 08:55 already (5 min).
    def incident(event_id: str, incident_id: str, account: str, opened: str) -> None:
        send(
            container, event_id, "incident.opened", {"id": incident_id, "title": "down", "account_id": account}, opened
        )

    incident("i1", "inc-1", "acme", at(5, 8, 50))
    incident("i2", "inc-2", "acme", at(5, 8, 30))
    send(container, "e1", "escalation.opened", {"id": "esc-1", "reason": "vip", "incident_id": "inc-1"}, at(5, 8, 55))
    drain(container)
    # 09:10: two more, opened at 09:05 and 09:00 (5 and 10 min).
    clock.advance(minutes=10)
    incident("i3", "inc-3", "globex", at(5, 9, 5))
    incident("i4", "inc-4", "globex", at(5, 9, 0))
    drain(container)
    runs = {r["input"]["id"]: r["id"] for r in container.automation.runs(None, "incident-desk", 10)}
    assert len(runs) == 4

    # 09:20: three approval tasks are settled in time (one after a reassignment); inc-4's is left to breach.
    clock.advance(minutes=10)
    container.automation.decide(open_task(container, runs["inc-1"])["id"], approve=True, by="ann")
    second = open_task(container, runs["inc-2"])["id"]
    container.automation.reassign(second, "bob", by="olive")
    container.automation.decide(second, approve=True, by="bob")
    container.automation.decide(open_task(container, runs["inc-3"])["id"], approve=False, by="bob", comment="dup")

    # Decisions: a large credit accepted (acme), one rejected (globex), a small one acted on and then overridden
    # on its record (globex), and an advisory one overridden through its review task (acme).
    accepted = container.automation.start("triage", {"amount": 900.0, "account_id": "acme"})
    rejected = container.automation.start("triage", {"amount": 800.0, "account_id": "globex"})
    acted = container.automation.start("triage", {"amount": 100.0, "account_id": "globex"})
    reviewed = container.automation.start("note-review", {"note": "hello", "account_id": "acme"})
    drain(container)
    container.automation.decide(open_task(container, accepted)["id"], approve=True, by="ann")
    container.automation.decide(open_task(container, rejected)["id"], approve=False, by="bob", comment="too much")
    [record] = container.decisions.records(run_id=acted)
    assert record["route"] == "acted"
    container.decisions.override(record["id"], {"band": "large"}, "premium customer", "dana")
    review = open_task(container, reviewed)
    assert review["kind"] == "review"
    container.automation.decide(review["id"], approve=False, by="oscar", comment="not ok", value={"ok": False})

    # 10:30: the clock of inc-4's approval (due 10:10) has breached.
    clock.advance(minutes=70)
    drain(container)

    report = kpis(container, clock).compute(JAN_1, None, "region")["kpis"]
    escalate = report["time_to_escalate_minutes"]
    assert (escalate["value"], escalate["n"], escalate["p50"], escalate["p90"]) == (12.5, 4, 7.5, 24.0)
    assert {name: figures["value"] for name, figures in escalate["by"].items()} == {"EU": 17.5, "US": 7.5}
    assert report["sla_breach_rate"] == {
        "value": 0.25,
        "unit": "ratio",
        "n": 4,
        "breached": 1,
        "by": {"EU": {"value": 0.0, "n": 2, "breached": 0}, "US": {"value": 0.5, "n": 2, "breached": 1}},
    }
    assert report["manual_touches"] == {
        "value": 8,
        "unit": "touches",
        "n": 8,
        "by_source": {"task_decisions": 6, "reassignments": 1, "overrides": 1},
        "by": {
            "EU": {"value": 5, "n": 5, "by_source": {"task_decisions": 4, "reassignments": 1, "overrides": 0}},
            "US": {"value": 3, "n": 3, "by_source": {"task_decisions": 2, "reassignments": 0, "overrides": 1}},
        },
    }
    assert report["manual_touches_per_run"] == {
        "value": 1.0,
        "unit": "touches per run",
        "n": 8,
        "touches": 8,
        "by": {"EU": {"value": 1.25, "n": 4, "touches": 5}, "US": {"value": 0.75, "n": 4, "touches": 3}},
    }
    assert report["override_rate"] == {
        "value": 0.5,
        "unit": "ratio",
        "n": 4,
        "overridden": 2,
        "autonomous": 1,
        "by": {
            "EU": {"value": 0.5, "n": 2, "overridden": 1, "autonomous": 0},
            "US": {"value": 0.5, "n": 2, "overridden": 1, "autonomous": 1},
        },
    }
    acceptance = report["acceptance_rate"]
    assert (acceptance["value"], acceptance["n"], acceptance["accepted"], acceptance["autonomous"]) == (0.25, 4, 1, 1)
    assert {name: figures["value"] for name, figures in acceptance["by"].items()} == {"EU": 0.5, "US": 0.0}

    # A window that starts after all of it sees none of it.
    later = kpis(container, clock).compute(clock.now() - timedelta(minutes=1), None)["kpis"]
    assert later["manual_touches"]["value"] == 0 and later["sla_breach_rate"]["n"] == 0
    assert later["override_rate"]["value"] is None and later["time_to_escalate_minutes"]["n"] == 0


def test_credit_approval_tasks_are_timed_from_open_to_close(
    container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    # A run started by a credit event asks for an approval; it is decided 90 minutes later.
    (tmp_path / "credit.yaml").write_text(
        """
id: credit-desk
version: 1
trigger:
  events: [com.opsrail.credit.created]
steps:
  - id: approve
    approval: {roles: [finance_controller]}
"""
    )
    container.automation.publish(tmp_path / "credit.yaml", "ops")
    accounts(container)
    credit = {"id": "cm-9", "account_id": "globex", "amount": 75, "currency": "USD", "reason": "outage"}
    send(container, "c9", "credit.created", credit, at(5, 9))
    drain(container)
    [run] = container.automation.runs(None, "credit-desk", 10)
    clock.advance(minutes=90)
    container.automation.decide(open_task(container, run["id"])["id"], approve=True, by="fiona")
    drain(container)
    cycle = kpis(container, clock).compute(JAN_1, None, "channel")["kpis"]["credit_approval_cycle_hours"]
    assert cycle["n"] == 0 and cycle["tasks"] == {"value": 1.5, "n": 1, "p50": 1.5, "p90": 1.5}
    assert cycle["by"] == {
        "partner": {
            "value": None,
            "n": 0,
            "p50": None,
            "p90": None,
            "tasks": {"value": 1.5, "n": 1, "p50": 1.5, "p90": 1.5},
        }
    }


def test_windows_are_read_as_dates_times_or_durations(container: Container, clock: FakeClock) -> None:
    service = kpis(container, clock)
    now = clock.now()
    assert service.window("P7D", None) == (now - timedelta(days=7), None)
    assert service.window("2026-01-01", "2026-01-03") == (JAN_1, datetime(2026, 1, 4, tzinfo=UTC))
    assert service.window("2026-01-01T08:00+01:00", "PT1H") == (JAN_1 + timedelta(hours=7), now - timedelta(hours=1))
    for bad in ("yesterday", "P0D", "P-1D"):
        with pytest.raises(InvalidInput, match="not an ISO 8601"):
            service.window(bad, None)
    for too_far in ("9999-12-31T23:59:59-23:59", "P999999999D"):  # valid, but past what dates can hold
        with pytest.raises(InvalidInput, match="beyond the dates"):
            service.window(too_far, None)
    with pytest.raises(InvalidInput, match="window is empty"):
        service.compute(JAN_1, JAN_1, None)
    with pytest.raises(InvalidInput, match="cannot split KPIs by 'country'"):
        service.compute(None, None, "country")
    empty = service.compute(None, None, None)
    assert empty["window"] == {"since": None, "until": None, "by": None, "as_of": now.isoformat()}
    assert all(kpi["n"] == 0 for kpi in empty["kpis"].values())
