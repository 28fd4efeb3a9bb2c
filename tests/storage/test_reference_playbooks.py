"""The reference playbooks for onboarding, quote-to-cash and invoice exceptions, each started by a real ingested
event on SQLite and PostgreSQL, on their happy paths and their exception paths."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

import opsrail.decisions
import opsrail.playbooks
from opsrail.wiring import Container
from tests.support import cloudevent

PLAYBOOKS = Path(opsrail.playbooks.__file__).parent / "reference"
TABLES = Path(opsrail.decisions.__file__).parent / "reference"


@pytest.fixture
def reference(container: Container) -> Container:
    for table in ("discount-band", "invoice-exception"):
        container.decisions.publish_table(TABLES / f"{table}.yaml", "ada")
    for name in ("enterprise-onboarding", "quote-discount", "invoice-exception"):
        container.automation.publish(PLAYBOOKS / f"{name}.yaml", "ada")
    return container


def send(container: Container, kind: str, verb: str, data: dict[str, Any], n: str = "1") -> None:
    event = cloudevent(id=f"{kind}-{verb}-{n}", source="crm/acme", type=f"com.opsrail.{kind}.{verb}", data=data)
    container.ingestion.ingest_single(orjson.dumps(event))


def drain(container: Container) -> None:
    for _ in range(12):
        asyncio.run(container.runner.tick())


def run_of(container: Container, playbook: str) -> dict[str, Any]:
    [run] = container.automation.runs(playbook_id=playbook)
    detail: dict[str, Any] = container.automation.show(run["id"])
    return detail


def steps(run: dict[str, Any]) -> dict[str, str]:
    return {s["id"]: s["status"] for s in run["steps"]}


def test_onboarding_opens_the_project_waits_for_go_live_and_activates_billing(reference: Container) -> None:
    order = {
        "id": "acme:SO-1",
        "account_id": "acme",
        "status": "signed",
        "total": "48000",
        "currency": "EUR",
        "go_live_billing_rule": "on_go_live",
    }
    send(reference, "order", "signed", order)
    drain(reference)
    run = run_of(reference, "enterprise-onboarding")
    assert steps(run)["provisioned"] == "waiting"
    [project] = reference.ledger.list("projects", "acme")
    assert [m["name"] for m in project["milestones"]] == ["Provision", "SSO", "Data migration", "Go-live"]
    [invoice] = reference.ledger.list("invoices", "acme")
    assert invoice["status"] == "draft" and invoice["amount_due"] == "48000"
    done = {"id": "acme:migrate", "name": "Migrate data", "account_id": "acme", "status": "done"}
    send(reference, "implementation_task", "updated", done)
    drain(reference)
    run = run_of(reference, "enterprise-onboarding")
    assert run["status"] == "succeeded", steps(run)
    assert reference.ledger.get("invoices", invoice["id"])["status"] == "open"
    assert reference.ledger.get("projects", project["id"])["milestones"][3]["status"] == "done"


def quote(n: str, discount: float, tier: str, clauses: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": f"acme:Q-{n}",
        "account_id": "acme",
        "status": "submitted",
        "amount": "60000",
        "currency": "EUR",
        "discount_pct": discount,
        "segment": {"tier": tier},
        "non_standard_clauses": clauses or [],
    }


def test_a_discount_within_the_band_needs_nobody(reference: Container) -> None:
    send(reference, "quote", "submitted", quote("1", 8, "mid_market"))
    drain(reference)
    run = run_of(reference, "quote-discount")
    assert run["status"] == "succeeded" and steps(run)["legal-review"] == "skipped"
    assert reference.automation.tasks() == []
    [record] = reference.decisions.records(run_id=run["id"])
    assert record["decision"] == "discount-band" and record["outputs"] == {"band_pct": 10.0, "high_risk": False}


def test_a_high_risk_deal_goes_to_finance_and_legal(reference: Container) -> None:
    send(reference, "quote", "submitted", quote("2", 30, "mid_market", ["uncapped liability"]))
    drain(reference)
    tasks = {t["step_id"]: t for t in reference.automation.tasks()}
    assert tasks["discount-approval"]["required"] == 2 and tasks["discount-approval"]["require"] == [
        "finance_controller"
    ]
    assert tasks["legal-review"]["roles"] == ["legal"]
    reference.automation.decide(tasks["discount-approval"]["id"], approve=True, by="ann")
    reference.automation.decide(tasks["discount-approval"]["id"], approve=True, by="fiona")
    reference.automation.decide(tasks["legal-review"]["id"], approve=True, by="lena")
    drain(reference)
    assert run_of(reference, "quote-discount")["status"] == "succeeded"


def test_a_clean_invoice_is_approved_by_policy_and_a_duplicate_vendor_goes_to_finance(reference: Container) -> None:
    clean = {
        "id": "v:INV-1",
        "status": "open",
        "amount_due": "900",
        "currency": "EUR",
        "attributes": {"po_amount": 900},
    }
    send(reference, "invoice", "received", clean, "1")
    drain(reference)
    assert run_of(reference, "invoice-exception")["status"] == "succeeded"
    suspect = {
        "id": "v:INV-2",
        "status": "open",
        "amount_due": "900",
        "currency": "EUR",
        "attributes": {"po_amount": 900, "duplicate_suspect": True},
    }
    send(reference, "invoice", "received", suspect, "2")
    drain(reference)
    [task] = reference.automation.tasks()
    assert task["roles"] == ["finance_controller"] and "duplicate_vendor" in task["title"]
    reference.automation.decide(task["id"], approve=False, by="fiona", comment="same bank account as Acme Supplies")
    drain(reference)
    failed = [r for r in reference.automation.runs(playbook_id="invoice-exception") if r["status"] == "failed"]
    assert len(failed) == 1


def test_a_late_go_live_asks_delivery_and_finance_what_to_do(reference: Container, clock: Any) -> None:
    order = {"id": "acme:SO-2", "account_id": "acme", "status": "signed", "total": "9000", "currency": "EUR"}
    send(reference, "order", "signed", order, "late")
    drain(reference)
    clock.advance(days=11)
    drain(reference)
    run = run_of(reference, "enterprise-onboarding")
    assert steps(run)["provisioned"] == "failed" and steps(run)["delay-review"] == "waiting"
    [task] = reference.automation.tasks()
    assert task["required"] == 2 and task["require"] == ["finance_controller"]
    assert "acme is late" in task["title"]
    reference.automation.decide(task["id"], approve=True, by="ann", comment="absorb under the onboarding terms")
    reference.automation.decide(task["id"], approve=True, by="fiona", comment="agreed")
    drain(reference)
    assert steps(run_of(reference, "enterprise-onboarding"))["delay-review"] == "succeeded"
