"""The built-in ledger on real stores: records, transitions, idempotent writes, the events every change emits, and
the ``ledger.*`` operations playbooks call."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opsrail.model import Conflict, InvalidInput, NotFound
from opsrail.services import EventQuery
from opsrail.wiring import Container

INVOICE = {"account_id": "acme", "amount_due": "12000", "currency": "EUR", "subscription_id": "sub-1"}


def test_an_invoice_is_held_released_and_every_change_is_an_event(container: Container) -> None:
    ledger = container.ledger
    invoice = ledger.create("invoices", INVOICE, actor="olive")
    assert invoice["status"] == "draft" and invoice["id"].startswith("inv_")
    held = ledger.act("invoices", invoice["id"], "hold", {"reason": "SSO setup slipped"}, actor="olive")
    assert held["on_hold"] is True and held["status"] == "on_hold" and held["hold_reason"] == "SSO setup slipped"
    with pytest.raises(InvalidInput, match="reason"):
        ledger.act("invoices", invoice["id"], "hold", {})
    released = ledger.act("invoices", invoice["id"], "release")
    assert released["status"] == "draft" and released["on_hold"] is False
    assert ledger.act("invoices", invoice["id"], "finalize")["status"] == "open"
    with pytest.raises(Conflict, match="cannot finalize"):
        ledger.act("invoices", invoice["id"], "finalize")
    with pytest.raises(InvalidInput, match="no action 'pay'"):
        ledger.act("invoices", invoice["id"], "pay")
    with pytest.raises(NotFound):
        ledger.act("invoices", "inv_nothing", "hold", {"reason": "x"})
    emitted = container.ingestion.events.find(EventQuery(source="opsrail/ledger", limit=10))
    assert sorted(e.type for e in emitted) == sorted(
        [
            "com.opsrail.invoice.created",
            "com.opsrail.invoice.held",
            "com.opsrail.invoice.released",
            "com.opsrail.invoice.finalized",
        ]
    )
    assert all(e.kind == "invoice" and e.object_id == invoice["id"] for e in emitted)
    audited = [e["action"] for e in container.audit.export() if e["action"].startswith("ledger.")]
    assert audited == [
        "ledger.invoice.created",
        "ledger.invoice.held",
        "ledger.invoice.released",
        "ledger.invoice.finalized",
    ]


def test_writes_are_idempotent(container: Container) -> None:
    ledger = container.ledger
    first = ledger.create(
        "credit-memos",
        {"account_id": "acme", "amount": "300", "currency": "EUR", "reason": "Sev1"},
        idempotency_key="run-1:credit",
    )
    again = ledger.create(
        "credit-memos",
        {"account_id": "acme", "amount": "300", "currency": "EUR", "reason": "Sev1"},
        idempotency_key="run-1:credit",
    )
    assert again == first and len(ledger.list("credit-memos", "acme")) == 1
    with pytest.raises(Conflict, match="different request"):
        ledger.create(
            "credit-memos",
            {"account_id": "acme", "amount": "999", "currency": "EUR", "reason": "Sev1"},
            idempotency_key="run-1:credit",
        )
    approved = ledger.act("credit-memos", first["id"], "approve", {"by": "fiona"}, idempotency_key="run-1:approve")
    assert approved["status"] == "approved" and approved["attributes"]["approved_by"] == "fiona"
    assert (
        ledger.act("credit-memos", first["id"], "approve", {"by": "fiona"}, idempotency_key="run-1:approve") == approved
    )
    with pytest.raises(Conflict, match="cannot approve"):
        ledger.act("credit-memos", first["id"], "approve", {"by": "fiona"})
    assert ledger.act("credit-memos", first["id"], "void", {"reason": "duplicate"})["status"] == "voided"


def test_records_are_validated_as_canonical_objects(container: Container) -> None:
    with pytest.raises(InvalidInput) as caught:
        container.ledger.create("credit-memos", {"account_id": "acme", "amount": "-5", "currency": "euro"})
    assert {e.path for e in caught.value.errors} >= {"$.amount", "$.currency", "$.reason"}
    with pytest.raises(NotFound, match="no collection"):
        container.ledger.create("payments", {})


def test_projects_change_orders_and_time(container: Container) -> None:
    ledger = container.ledger
    project = ledger.create(
        "projects",
        {"account_id": "acme", "name": "Acme onboarding", "milestones": [{"name": "SSO"}, {"name": "Go-live"}]},
    )
    updated = ledger.act("projects", project["id"], "update-milestone", {"milestone": "SSO", "status": "blocked"})
    assert [m["status"] for m in updated["milestones"]] == ["blocked", "pending"]
    with pytest.raises(NotFound, match="no milestone"):
        ledger.act("projects", project["id"], "update-milestone", {"milestone": "Nope", "status": "done"})
    order = ledger.create(
        "change-orders", {"account_id": "acme", "description": "custom SAML", "amount": "4000", "currency": "EUR"}
    )
    assert order["status"] == "pending_approval"
    assert ledger.act("change-orders", order["id"], "validate", {"by": "fiona"})["status"] == "approved"
    posting = ledger.create(
        "time-postings",
        {
            "project_id": project["id"],
            "person": "sam",
            "hours": "2.5",
            "activity": "SSO escalation",
            "posted_on": "2026-11-30",
        },
    )
    assert posting["hours"] == "2.5"
    types = {e.type for e in container.ingestion.events.find(EventQuery(source="opsrail/ledger", limit=50))}
    assert {"opsrail.ledger.project.created", "opsrail.ledger.project.milestone_updated"} <= types
    assert {"com.opsrail.change_order.approved", "opsrail.ledger.time_posting.created"} <= types


PLAYBOOK = """
id: provisioning-delay
version: 1
steps:
  - id: hold
    action: ledger.hold_invoice
    with: {invoice: "${ run.input.invoice }", reason: "provisioning slipped"}
  - id: credit
    needs: [hold]
    action: ledger.create_credit_memo
    with: {account_id: acme, amount: 250, currency: EUR, reason: "delay goodwill"}
  - id: offboard
    needs: [credit]
    action: ledger.close_billing
    with: {account_id: acme, reason: "customer left"}
"""


def test_playbooks_act_on_the_ledger_exactly_once(container: Container, tmp_path: Path) -> None:
    invoice = container.ledger.create("invoices", INVOICE)
    container.ledger.create("subscriptions", {"account_id": "acme", "plan": "enterprise"})
    path = tmp_path / "pb.yaml"
    path.write_text(PLAYBOOK)
    container.automation.publish(path, "ada")
    run_id = container.automation.start("provisioning-delay", {"invoice": invoice["id"]}, actor="olive")
    for _ in range(10):
        asyncio.run(container.runner.tick())
    run = container.automation.show(run_id)
    assert run["status"] == "succeeded", run
    steps = {s["id"]: s["output"] for s in run["steps"]}
    assert steps["hold"]["on_hold"] is True
    assert steps["credit"]["status"] == "provisional"
    assert steps["offboard"]["canceled_subscriptions"] and steps["offboard"]["finalized_invoices"] == []
    assert len(container.ledger.list("credit-memos", "acme")) == 1
    called = [e for e in container.audit.export() if e["action"] == "connector.called"]
    assert [(e["subject"], e["details"]["outcome"]) for e in called] == [
        ("ledger.hold_invoice", "ok"),
        ("ledger.create_credit_memo", "ok"),
        ("ledger.close_billing", "ok"),
    ]
    assert called[0]["details"]["idempotency_key"]


def test_a_ledger_refusal_fails_the_step_without_retrying(container: Container, tmp_path: Path) -> None:
    path = tmp_path / "pb.yaml"
    path.write_text(PLAYBOOK)
    container.automation.publish(path, "ada")
    run_id = container.automation.start("provisioning-delay", {"invoice": "inv_missing"}, actor="olive")
    for _ in range(5):
        asyncio.run(container.runner.tick())
    run = container.automation.show(run_id)
    hold = {s["id"]: s for s in run["steps"]}["hold"]
    assert run["status"] == "failed" and hold["attempt"] == 1 and "no invoice 'inv_missing'" in hold["error"]
