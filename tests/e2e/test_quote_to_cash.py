"""Quote-to-cash discounts and supplier invoice exceptions over real HTTP: each quote or invoice is an ingested
event, the reference decision tables decide the band or the exception (a decision record each), and the people the
approval rules name decide the tasks, with four eyes on high-risk deals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.support import (
    Content,
    Opsrail,
    Vendors,
    decide,
    decision_records,
    open_task,
    open_tasks,
    run_started,
    send_event,
    start_opsrail,
    step_statuses,
    steps,
    task_trail,
    unique,
    wait_run,
    wait_step,
)

CONTENT = Content(playbooks=["quote-discount", "invoice-exception"], tables=["discount-band", "invoice-exception"])


@pytest.fixture(scope="module")
def opsrail(tmp_path_factory: pytest.TempPathFactory, vendors: Vendors) -> Iterator[Opsrail]:
    yield from start_opsrail(tmp_path_factory.mktemp("quote-to-cash"), CONTENT, vendors.connectors())


# -- quote-to-cash discount --------------------------------------------------------------------------------------


def submit_quote(
    crm: httpx.Client, tier: str, discount: float, amount: str = "60000", clauses: list[str] | None = None
) -> str:
    quote_id = unique("acme:Q")
    quote = {
        "id": quote_id,
        "account_id": "acme",
        "status": "submitted",
        "amount": amount,
        "currency": "EUR",
        "discount_pct": discount,
        "segment": {"tier": tier},
        "legal_entity_id": "acme-gmbh",
        "non_standard_clauses": clauses or [],
    }
    send_event(crm, "quote", "submitted", quote)
    return quote_id


def test_a_discount_within_the_band_is_approved_by_policy(people: dict[str, httpx.Client]) -> None:
    olive = people["olive"]
    run_id = run_started(olive, "quote-discount", submit_quote(people["crm"], "mid_market", 8))
    run = wait_run(olive, run_id, "succeeded")
    assert step_statuses(run) == {
        "band": "succeeded",
        "discount-approval": "succeeded",
        "legal-review": "skipped",
        "entity-check": "succeeded",
        "deal-desk": "succeeded",
        "deal-desk-after-legal": "skipped",
    }
    assert open_tasks(olive, run_id) == []
    assert steps(run)["entity-check"]["output"] == {"legal_entity": "acme-gmbh", "tax_checked": True}
    record = decision_records(olive, run_id)["discount-band"]
    assert record["outputs"] == {"band_pct": 10.0, "high_risk": False}
    assert record["matched_rules"] == ["mid-market"] and record["route"] == "acted"
    assert record["inputs"] == {"tier": "mid_market", "amount": 60000.0, "discount_pct": 8.0, "non_standard": False}
    assert steps(run)["band"]["output"]["decision_record"] == record["id"]


def test_a_discount_above_the_band_needs_an_approver(people: dict[str, httpx.Client]) -> None:
    olive, ann, fiona, aude = people["olive"], people["ann"], people["fiona"], people["aude"]
    quote_id = submit_quote(people["crm"], "enterprise", 18)
    run_id = run_started(olive, "quote-discount", quote_id)
    task = open_task(olive, run_id, "discount-approval")
    assert (task["roles"], task["required"]) == (["approver"], 1)
    assert task["title"] == f"Discount of 18% on {quote_id} (band 15.0%)"
    assert decide(fiona, task["id"], True, "fine").status_code == 403
    assert decide(ann, task["id"], True, "three-year commitment").status_code == 200
    run = wait_run(olive, run_id, "succeeded")
    assert step_statuses(run)["deal-desk"] == "succeeded"
    assert decision_records(olive, run_id)["discount-band"]["outputs"] == {"band_pct": 15.0, "high_risk": False}
    assert task_trail(aude, task["id"]) == [("ann", "task.approved")]


def test_a_discount_the_approver_refuses_never_reaches_the_deal_desk(people: dict[str, httpx.Client]) -> None:
    olive, bob, aude = people["olive"], people["bob"], people["aude"]
    run_id = run_started(olive, "quote-discount", submit_quote(people["crm"], "smb", 12, amount="8000"))
    task = open_task(olive, run_id, "discount-approval")
    assert decide(bob, task["id"], False, "no strategic reason for 12% on a small deal").status_code == 200
    run = wait_run(olive, run_id, "failed")
    assert step_statuses(run)["discount-approval"] == "failed"
    assert "succeeded" not in (step_statuses(run)["deal-desk"], step_statuses(run)["deal-desk-after-legal"])
    assert task_trail(aude, task["id"]) == [("bob", "task.rejected")]


def test_a_high_risk_deal_goes_to_finance_and_its_clauses_to_legal(people: dict[str, httpx.Client]) -> None:
    olive, ann, bob, fiona, lena, aude = (people[p] for p in ("olive", "ann", "bob", "fiona", "lena", "aude"))
    clauses = ["uncapped liability for data breaches"]
    run_id = run_started(olive, "quote-discount", submit_quote(people["crm"], "mid_market", 30, clauses=clauses))
    discount = open_task(olive, run_id, "discount-approval")
    legal = open_task(olive, run_id, "legal-review")
    assert discount["roles"] == ["finance_controller", "approver"]
    assert (discount["required"], discount["require"]) == (2, ["finance_controller"])
    assert legal["roles"] == ["legal"]
    record = decision_records(olive, run_id)["discount-band"]
    assert record["outputs"] == {"band_pct": 10.0, "high_risk": True} and record["inputs"]["non_standard"] is True

    assert decide(ann, discount["id"], True, "strategic logo").status_code == 200
    blocked = decide(bob, discount["id"], True, "agreed")
    assert blocked.status_code == 409 and "finance_controller" in blocked.json()["detail"]
    assert decide(ann, legal["id"], True, "I read it").status_code == 403
    assert decide(fiona, discount["id"], True, "margin still above the floor").status_code == 200
    run = wait_step(olive, run_id, "discount-approval", "succeeded")
    assert run["status"] == "running" and step_statuses(run)["legal-review"] == "waiting"
    assert decide(lena, legal["id"], True, "liability capped by the MSA's order of precedence").status_code == 200

    run = wait_run(olive, run_id, "succeeded")
    assert step_statuses(run)["deal-desk-after-legal"] == "succeeded" and step_statuses(run)["deal-desk"] == "skipped"
    assert task_trail(aude, discount["id"]) == [("ann", "task.approved"), ("fiona", "task.approved")]
    assert task_trail(aude, legal["id"]) == [("lena", "task.approved")]


def test_a_deep_discount_finance_refuses_fails_the_quote(people: dict[str, httpx.Client]) -> None:
    olive, carol = people["olive"], people["carol"]
    run_id = run_started(olive, "quote-discount", submit_quote(people["crm"], "smb", 20, amount="8000"))
    task = open_task(olive, run_id, "discount-approval")
    assert task["require"] == ["finance_controller"] and task["required"] == 2
    assert decide(carol, task["id"], False, "20% on a small deal breaks the pricing policy").status_code == 200
    run = wait_run(olive, run_id, "failed")
    assert step_statuses(run)["legal-review"] == "skipped"
    assert "succeeded" not in (step_statuses(run)["deal-desk"], step_statuses(run)["deal-desk-after-legal"])
    assert decision_records(olive, run_id)["discount-band"]["outputs"] == {"band_pct": 5.0, "high_risk": True}


def test_clauses_legal_refuses_fail_a_quote_within_the_band(people: dict[str, httpx.Client]) -> None:
    olive, lena, aude = people["olive"], people["lena"], people["aude"]
    clauses = ["termination for convenience after 6 months"]
    run_id = run_started(olive, "quote-discount", submit_quote(people["crm"], "enterprise", 10, clauses=clauses))
    legal = open_task(olive, run_id, "legal-review")
    run = wait_step(olive, run_id, "discount-approval", "succeeded")
    assert [t["step_id"] for t in open_tasks(olive, run_id)] == ["legal-review"]
    assert decision_records(olive, run_id)["discount-band"]["outputs"] == {"band_pct": 15.0, "high_risk": True}
    assert decide(lena, legal["id"], False, "termination for convenience is not acceptable").status_code == 200
    run = wait_run(olive, run_id, "failed")
    assert step_statuses(run)["legal-review"] == "failed"
    assert "succeeded" not in (step_statuses(run)["deal-desk"], step_statuses(run)["deal-desk-after-legal"])
    assert task_trail(aude, legal["id"]) == [("lena", "task.rejected")]


# -- supplier invoice exceptions ---------------------------------------------------------------------------------


def receive_invoice(crm: httpx.Client, amount: str, **attributes: Any) -> str:
    invoice_id = unique("supplies:INV")
    invoice = {"id": invoice_id, "status": "open", "amount_due": amount, "currency": "EUR", "attributes": attributes}
    send_event(crm, "invoice", "received", invoice, "erp/acme")
    return invoice_id


def test_a_clean_invoice_under_the_threshold_is_approved_by_policy(people: dict[str, httpx.Client]) -> None:
    olive = people["olive"]
    run_id = run_started(olive, "invoice-exception", receive_invoice(people["crm"], "900", po_amount=900))
    run = wait_run(olive, run_id, "succeeded")
    assert step_statuses(run) == {"check": "succeeded", "budget-owner": "succeeded", "release-for-payment": "succeeded"}
    assert open_tasks(olive, run_id) == []
    record = decision_records(olive, run_id)["invoice-exception"]
    assert record["outputs"] == {"exception": "none", "approver_role": "approver"}
    assert record["matched_rules"] == ["clean"]


def test_a_duplicate_looking_vendor_is_flagged_to_finance_who_refuse_it(people: dict[str, httpx.Client]) -> None:
    olive, ann, fiona, aude = people["olive"], people["ann"], people["fiona"], people["aude"]
    invoice_id = receive_invoice(people["crm"], "900", po_amount=900, duplicate_suspect=True)
    run_id = run_started(olive, "invoice-exception", invoice_id)
    task = open_task(olive, run_id, "budget-owner")
    assert task["roles"] == ["finance_controller"] and task["title"] == f"Invoice {invoice_id}: duplicate_vendor"
    record = decision_records(olive, run_id)["invoice-exception"]
    assert record["outputs"] == {"exception": "duplicate_vendor", "approver_role": "finance_controller"}
    assert record["inputs"]["duplicate_suspect"] is True

    assert decide(ann, task["id"], True, "pay it").status_code == 403
    assert decide(fiona, task["id"], False, "same bank account as Acme Supplies").status_code == 200
    run = wait_run(olive, run_id, "failed")
    assert step_statuses(run)["budget-owner"] == "failed"
    assert step_statuses(run)["release-for-payment"] != "succeeded"
    assert task_trail(aude, task["id"]) == [("fiona", "task.rejected")]


@pytest.mark.parametrize(
    ("amount", "attributes", "exception", "roles", "approver"),
    [
        ("1200", {"po_amount": 1000}, "above_purchase_order", ["approver"], "ann"),
        ("800", {}, "no_purchase_order", ["approver"], "bob"),
        ("12500", {"po_amount": 12500}, "none", ["finance_controller"], "carol"),
        ("700", {"po_amount": 700, "new_vendor": True}, "vendor_onboarding", ["finance_controller"], "fiona"),
    ],
)
def test_an_invoice_exception_goes_to_the_budget_owner_or_finance(
    people: dict[str, httpx.Client],
    amount: str,
    attributes: dict[str, Any],
    exception: str,
    roles: list[str],
    approver: str,
) -> None:
    olive = people["olive"]
    run_id = run_started(olive, "invoice-exception", receive_invoice(people["crm"], amount, **attributes))
    task = open_task(olive, run_id, "budget-owner")
    assert task["roles"] == roles and task["title"].endswith(f": {exception}")
    assert decide(people[approver], task["id"], True, "matches the delivery note").status_code == 200
    run = wait_run(olive, run_id, "succeeded")
    assert step_statuses(run)["release-for-payment"] == "succeeded"
    assert decision_records(olive, run_id)["invoice-exception"]["outputs"]["exception"] == exception
