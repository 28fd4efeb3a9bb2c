"""The five finance automations shipped as reference playbooks, each started by a real ingested event and acting
on the built-in ledger: provisioning delay, Sev1 credit, scope expansion, specialist escalation, offboarding."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

import opsrail.playbooks
from opsrail.wiring import Container
from tests.support import cloudevent

FOLDER = Path(opsrail.playbooks.__file__).parent / "reference" / "finance"


@pytest.fixture
def finance(container: Container) -> Container:
    for path in sorted(FOLDER.glob("*.yaml")):
        container.automation.publish(path, "ada")
    return container


def send(container: Container, kind: str, verb: str, data: dict[str, Any], n: int = 1) -> None:
    event = cloudevent(id=f"{kind}-{verb}-{n}", source="crm/acme", type=f"com.opsrail.{kind}.{verb}", data=data)
    receipt = container.ingestion.ingest_single(orjson.dumps(event))
    assert not receipt.duplicate


def drain(container: Container) -> None:
    for _ in range(12):
        asyncio.run(container.runner.tick())


def only_run(container: Container, playbook: str) -> dict[str, Any]:
    [run] = container.automation.runs(playbook_id=playbook)
    detail: dict[str, Any] = container.automation.show(run["id"])
    return detail


def test_the_five_playbooks_are_valid(finance: Container) -> None:
    assert {p["id"] for p in finance.automation.playbooks()} >= {
        "provisioning-delay",
        "sev1-credit",
        "scope-expansion",
        "specialist-escalation",
        "offboarding",
    }


def test_a_blocked_provisioning_task_holds_the_invoice_and_marks_the_milestone(finance: Container) -> None:
    invoice = finance.ledger.create("invoices", {"account_id": "acme", "amount_due": "9000", "currency": "EUR"})
    project = finance.ledger.create(
        "projects", {"account_id": "acme", "name": "Onboarding", "milestones": [{"name": "SSO"}]}
    )
    task = {
        "id": "acme:sso",
        "name": "Configure SSO",
        "account_id": "acme",
        "project_id": project["id"],
        "milestone": "SSO",
        "status": "blocked",
        "blocked_reason": "non-standard SAML request",
        "attributes": {"invoice_id": invoice["id"]},
    }
    send(finance, "implementation_task", "updated", task)
    drain(finance)
    assert only_run(finance, "provisioning-delay")["status"] == "succeeded"
    held = finance.ledger.get("invoices", invoice["id"])
    assert held["on_hold"] and "non-standard SAML request" in held["hold_reason"]
    assert finance.ledger.get("projects", project["id"])["milestones"][0]["status"] == "blocked"


def test_a_sev1_opens_a_provisional_credit_that_finance_approves(finance: Container) -> None:
    incident = {
        "id": "acme:INC-9",
        "title": "Checkout down",
        "severity": 1,
        "account_id": "acme",
        "attributes": {"credit_amount": 3000, "currency": "EUR"},
    }
    send(finance, "incident", "opened", incident)
    drain(finance)
    [memo] = finance.ledger.list("credit-memos", "acme")
    assert memo["status"] == "provisional" and memo["incident_id"] == "acme:INC-9"
    [task] = finance.automation.tasks()
    assert task["roles"] == ["finance_controller"] and task["required"] == 1
    finance.automation.decide(task["id"], approve=True, by="fiona")
    drain(finance)
    assert only_run(finance, "sev1-credit")["status"] == "succeeded"
    assert finance.ledger.get("credit-memos", memo["id"])["status"] == "approved"


def test_a_rejected_sev1_credit_is_voided(finance: Container) -> None:
    incident = {
        "id": "acme:INC-10",
        "title": "Login down",
        "severity": 1,
        "account_id": "acme",
        "attributes": {"credit_amount": 9000},
    }
    send(finance, "incident", "opened", incident, 2)
    drain(finance)
    [task] = finance.automation.tasks()
    assert task["required"] == 2 and task["require"] == ["finance_controller"]
    finance.automation.decide(task["id"], approve=False, by="fiona", comment="covered by the SLA already")
    drain(finance)
    [memo] = finance.ledger.list("credit-memos", "acme")
    assert memo["status"] == "voided"


def test_scope_expansion_becomes_a_validated_change_order(finance: Container) -> None:
    change = {
        "id": "acme:CO-1",
        "account_id": "acme",
        "description": "custom SAML attributes",
        "amount": "4000",
        "currency": "EUR",
    }
    send(finance, "change_order", "requested", change)
    drain(finance)
    [order] = finance.ledger.list("change-orders", "acme")
    assert order["status"] == "pending_approval"
    [task] = finance.automation.tasks()
    finance.automation.decide(task["id"], approve=True, by="carol")
    drain(finance)
    assert finance.ledger.get("change-orders", order["id"])["status"] == "approved"


def test_a_specialist_escalation_posts_time(finance: Container) -> None:
    project = finance.ledger.create("projects", {"account_id": "acme", "name": "Onboarding"})
    escalation = {
        "id": "acme:ESC-1",
        "reason": "SAML debugging",
        "target_team": "specialists",
        "attributes": {"project_id": project["id"], "specialist": "sam", "hours": 3},
    }
    send(finance, "escalation", "opened", escalation)
    drain(finance)
    assert only_run(finance, "specialist-escalation")["status"] == "succeeded"
    [posting] = finance.ledger.list("time-postings")
    assert posting["person"] == "sam" and posting["hours"] == "3" and posting["project_id"] == project["id"]


def test_offboarding_closes_out_billing(finance: Container) -> None:
    draft = finance.ledger.create("invoices", {"account_id": "acme", "amount_due": "1000", "currency": "EUR"})
    subscription = finance.ledger.create("subscriptions", {"account_id": "acme", "plan": "enterprise"})
    send(finance, "account", "offboarded", {"id": "acme", "name": "Acme", "status": "offboarding"})
    drain(finance)
    run = only_run(finance, "offboarding")
    assert run["status"] == "succeeded"
    assert finance.ledger.get("invoices", draft["id"])["status"] == "open"
    assert finance.ledger.get("subscriptions", subscription["id"])["status"] == "canceled"
