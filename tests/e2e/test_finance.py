"""The finance automations over real HTTP, each started by an ingested event and acting on the built-in ledger:
a Sev1's provisional service credit approved by amount (by policy, one finance controller, four eyes) or voided when
finance refuses it, a scope expansion that becomes a change order finance validates, and an offboarding that closes
out billing."""

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
    ledger,
    ledger_record,
    open_task,
    open_tasks,
    run_started,
    runs_of,
    send_event,
    start_opsrail,
    step_statuses,
    steps,
    task_trail,
    unique,
    wait_run,
    wait_step,
)

CONTENT = Content(playbooks=["finance/sev1-credit", "finance/scope-expansion", "finance/offboarding"])


@pytest.fixture(scope="module")
def opsrail(tmp_path_factory: pytest.TempPathFactory, vendors: Vendors) -> Iterator[Opsrail]:
    yield from start_opsrail(tmp_path_factory.mktemp("finance"), CONTENT, vendors.connectors())


def open_sev1(crm: httpx.Client, account: str, credit: float, currency: str = "EUR") -> str:
    incident_id = f"{account}:INC-1"
    incident = {
        "id": incident_id,
        "title": "Checkout down for EU tenants",
        "severity": 1,
        "account_id": account,
        "attributes": {"credit_amount": credit, "currency": currency},
    }
    send_event(crm, "incident", "opened", incident, "monitoring/acme")
    return incident_id


def the_memo(client: httpx.Client, account: str) -> dict[str, Any]:
    [memo] = ledger(client, "credit-memos", account)
    return memo


# -- Sev1 -> provisional credit ----------------------------------------------------------------------------------


def test_a_small_credit_is_approved_by_policy(people: dict[str, httpx.Client]) -> None:
    olive = people["olive"]
    account = unique("acme")
    incident_id = open_sev1(people["crm"], account, 300)
    run = wait_run(olive, run_started(olive, "sev1-credit", incident_id), "succeeded")
    assert step_statuses(run) == {
        "provisional-credit": "succeeded",
        "approve": "succeeded",
        "approve-credit": "succeeded",
        "void-credit": "skipped",
    }
    assert open_tasks(olive, run["id"]) == []
    memo = the_memo(olive, account)
    assert memo["id"] == steps(run)["provisional-credit"]["output"]["id"]
    assert (memo["status"], memo["amount"], memo["currency"], memo["incident_id"]) == (
        "approved",
        "300",
        "EUR",
        incident_id,
    )
    assert memo["reason"] == f"Sev1 {incident_id}: Checkout down for EU tenants"


def test_a_medium_credit_needs_a_finance_controller(people: dict[str, httpx.Client]) -> None:
    olive, ann, fiona, aude = people["olive"], people["ann"], people["fiona"], people["aude"]
    account = unique("acme")
    run_id = run_started(olive, "sev1-credit", open_sev1(people["crm"], account, 3000))
    task = open_task(olive, run_id, "approve")
    assert (task["roles"], task["required"], task["title"]) == (["finance_controller"], 1, f"Sev1 credit for {account}")
    assert the_memo(olive, account)["status"] == "provisional"

    refused = decide(ann, task["id"], True, "looks fine")
    assert refused.status_code == 403 and refused.json()["action"] == "task.decide"
    assert decide(olive, task["id"], True, "ok").status_code == 403
    approved = decide(fiona, task["id"], True, "covered by the premium SLA")
    assert approved.status_code == 200, approved.text
    run = wait_run(olive, run_id, "succeeded")
    assert step_statuses(run)["approve-credit"] == "succeeded" and step_statuses(run)["void-credit"] == "skipped"
    assert the_memo(olive, account)["status"] == "approved"
    assert task_trail(aude, task["id"]) == [("fiona", "task.approved")]


def test_a_large_credit_needs_four_eyes_one_of_them_finance(people: dict[str, httpx.Client]) -> None:
    olive, ann, bob, carol, aude = people["olive"], people["ann"], people["bob"], people["carol"], people["aude"]
    account = unique("acme")
    run_id = run_started(olive, "sev1-credit", open_sev1(people["crm"], account, 9000))
    task = open_task(olive, run_id, "approve")
    assert task["roles"] == ["finance_controller", "approver"]
    assert task["required"] == 2 and task["require"] == ["finance_controller"]

    assert decide(ann, task["id"], True, "customer impact confirmed").status_code == 200
    twice = decide(ann, task["id"], True, "again")
    assert twice.status_code == 409 and "already decided" in twice.json()["detail"]
    second_approver = decide(bob, task["id"], True, "me too")
    assert second_approver.status_code == 409
    assert "finance_controller without an approver" in second_approver.json()["detail"]
    run = wait_step(olive, run_id, "approve", "waiting")
    assert run["status"] == "running" and the_memo(olive, account)["status"] == "provisional"

    assert decide(carol, task["id"], True, "approved within the quarter's budget").status_code == 200
    wait_run(olive, run_id, "succeeded")
    assert the_memo(olive, account)["status"] == "approved"
    assert task_trail(aude, task["id"]) == [("ann", "task.approved"), ("carol", "task.approved")]


def test_a_rejected_credit_is_voided_and_never_approved(people: dict[str, httpx.Client]) -> None:
    olive, fiona, aude = people["olive"], people["fiona"], people["aude"]
    account = unique("acme")
    run_id = run_started(olive, "sev1-credit", open_sev1(people["crm"], account, 4200))
    task = open_task(olive, run_id, "approve")
    without_reason = decide(fiona, task["id"], False)
    assert without_reason.status_code == 400 and "reason" in without_reason.json()["detail"]
    assert decide(fiona, task["id"], False, "the outage is covered by the SLA already").status_code == 200

    run = wait_run(olive, run_id, "succeeded")
    assert step_statuses(run) == {
        "provisional-credit": "succeeded",
        "approve": "failed",
        "void-credit": "succeeded",
        "approve-credit": "skipped",
    }
    memo = the_memo(olive, account)
    assert memo["status"] == "voided"
    assert [m for m in ledger(olive, "credit-memos", account) if m["status"] == "approved"] == []
    assert task_trail(aude, task["id"]) == [("fiona", "task.rejected")]


def test_an_incident_that_is_not_a_sev1_or_carries_no_credit_opens_none(people: dict[str, httpx.Client]) -> None:
    crm, olive = people["crm"], people["olive"]
    account = unique("acme")
    no_credit: dict[str, Any] = {"id": f"{account}:INC-3", "title": "Login down", "severity": 1, "account_id": account}
    sev2: dict[str, Any] = {**no_credit, "id": f"{account}:INC-2", "severity": 2, "attributes": {"credit_amount": 800}}
    send_event(crm, "incident", "opened", sev2, "monitoring/acme")
    send_event(crm, "incident", "opened", no_credit, "monitoring/acme")
    # A later Sev1 with a credit is picked up: by then the two before it have been seen and passed over.
    run_started(olive, "sev1-credit", open_sev1(crm, account, 100))
    assert runs_of(olive, "sev1-credit", sev2["id"]) == [] and runs_of(olive, "sev1-credit", no_credit["id"]) == []
    assert len(ledger(olive, "credit-memos", account)) == 1


# -- scope expansion -> change order -----------------------------------------------------------------------------


def request_change(crm: httpx.Client, account: str, amount: str = "4000") -> str:
    change_id = f"{account}:CO-1"
    change = {
        "id": change_id,
        "account_id": account,
        "description": "Additional SAML connector for a subsidiary",
        "amount": amount,
        "currency": "EUR",
        "status": "draft",
    }
    send_event(crm, "change_order", "requested", change, "psa/acme")
    return change_id


def test_a_scope_expansion_becomes_a_change_order_finance_validates(people: dict[str, httpx.Client]) -> None:
    olive, ann, fiona, aude = people["olive"], people["ann"], people["fiona"], people["aude"]
    account = unique("acme")
    run_id = run_started(olive, "scope-expansion", request_change(people["crm"], account))
    task = open_task(olive, run_id, "finance-validation")
    assert task["roles"] == ["finance_controller"] and task["title"] == f"Validate the change order for {account}"
    [order] = ledger(olive, "change-orders", account)
    assert (order["status"], order["amount"], order["currency"]) == ("pending_approval", "4000", "EUR")

    assert decide(ann, task["id"], True, "fine by me").status_code == 403
    assert decide(fiona, task["id"], True, "priced at the contract's day rate").status_code == 200
    run = wait_run(olive, run_id, "succeeded")
    assert steps(run)["validated"]["output"]["id"] == order["id"]
    assert ledger_record(olive, "change-orders", order["id"])["status"] == "approved"
    assert task_trail(aude, task["id"]) == [("fiona", "task.approved")]


def test_a_change_order_finance_refuses_is_not_validated(people: dict[str, httpx.Client]) -> None:
    olive, carol = people["olive"], people["carol"]
    account = unique("acme")
    run_id = run_started(olive, "scope-expansion", request_change(people["crm"], account, "25000"))
    task = open_task(olive, run_id, "finance-validation")
    assert decide(carol, task["id"], False, "out of scope for this contract: sell a new order").status_code == 200
    run = show_run_settled(olive, run_id)
    assert run["status"] == "failed"
    assert step_statuses(run) == {"change-order": "succeeded", "finance-validation": "failed", "validated": "cancelled"}
    [order] = ledger(olive, "change-orders", account)
    assert order["status"] != "approved"


def show_run_settled(client: httpx.Client, run_id: str) -> dict[str, Any]:
    try:
        return wait_run(client, run_id, "failed")
    except AssertionError as exc:
        raise AssertionError(f"expected the run to fail: {exc}") from None


# -- offboarding -> final bill -----------------------------------------------------------------------------------


def test_offboarding_finalises_the_draft_invoices_and_cancels_the_subscriptions(
    people: dict[str, httpx.Client],
) -> None:
    crm, olive = people["crm"], people["olive"]
    account = unique("acme")
    other = unique("globex")

    def create(collection: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = crm.post(f"/v1/ledger/{collection}", json=body)
        assert answer.status_code == 201, answer.text
        record: dict[str, Any] = answer.json()
        return record

    draft = create("invoices", {"account_id": account, "amount_due": "1000", "currency": "EUR"})
    paid_up = create("invoices", {"account_id": account, "amount_due": "500", "currency": "EUR"})
    assert crm.post(f"/v1/ledger/invoices/{paid_up['id']}:finalize").status_code == 200
    subscription = create("subscriptions", {"account_id": account, "plan": "enterprise"})
    bystander = create("invoices", {"account_id": other, "amount_due": "700", "currency": "EUR"})

    offboarded = {"id": account, "name": "Acme", "status": "offboarding"}
    send_event(crm, "account", "offboarded", offboarded)
    run = wait_run(olive, run_started(olive, "offboarding", account), "succeeded")
    assert step_statuses(run) == {
        "final-billing": "succeeded",
        "revoke-access": "succeeded",
        "archive-records": "succeeded",
    }
    assert steps(run)["final-billing"]["output"] == {
        "account_id": account,
        "finalized_invoices": [draft["id"]],
        "canceled_subscriptions": [subscription["id"]],
    }
    assert ledger_record(olive, "invoices", draft["id"])["status"] == "open"
    assert ledger_record(olive, "invoices", paid_up["id"])["status"] == "open"
    assert ledger_record(olive, "subscriptions", subscription["id"])["status"] == "canceled"
    assert ledger_record(olive, "invoices", bystander["id"])["status"] == "draft"


def test_the_same_offboarding_event_twice_closes_out_billing_once(people: dict[str, httpx.Client]) -> None:
    crm, olive = people["crm"], people["olive"]
    account = unique("acme")
    event = {
        "specversion": "1.0",
        "id": unique("account-offboarded"),
        "source": "crm/acme",
        "type": "com.opsrail.account.offboarded",
        "data": {"id": account, "name": "Acme", "status": "offboarding"},
    }
    first, again = crm.post("/v1/events", json=event), crm.post("/v1/events", json=event)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json()
    wait_run(olive, run_started(olive, "offboarding", account), "succeeded")
    assert len(runs_of(olive, "offboarding", account)) == 1
