"""Enterprise onboarding over real HTTP, with the finance automations a blocked implementation task sets off:
a signed order opens the delivery project and a draft go-live invoice and waits for the data migration; a
non-standard SSO request blocks a task, which pauses billing (``provisioning-delay``) and brings in the specialists
(``specialist-escalation``, their time posted on the project)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.support import (
    Content,
    Opsrail,
    Vendors,
    ledger,
    ledger_record,
    run_started,
    runs_of,
    send_event,
    show_run,
    start_opsrail,
    step_statuses,
    steps,
    unique,
    wait_run,
    wait_step,
)

CONTENT = Content(
    playbooks=[
        "enterprise-onboarding",
        "finance/provisioning-delay",
        "finance/specialist-escalation",
    ]
)


@pytest.fixture(scope="module")
def opsrail(tmp_path_factory: pytest.TempPathFactory, vendors: Vendors) -> Iterator[Opsrail]:
    yield from start_opsrail(tmp_path_factory.mktemp("onboarding"), CONTENT, vendors.connectors())


def sign_order(crm: httpx.Client, account: str, total: str = "48000") -> str:
    order_id = f"{account}:SO-1"
    order = {
        "id": order_id,
        "account_id": account,
        "status": "signed",
        "total": total,
        "currency": "EUR",
        "go_live_billing_rule": "on_go_live",
    }
    send_event(crm, "order", "signed", order)
    return order_id


def task_update(account: str, name: str, status: str, **extra: Any) -> dict[str, Any]:
    task_id = f"{account}:{name.lower().replace(' ', '-')}"
    return {"id": task_id, "name": name, "account_id": account, "status": status, **extra}


def waiting_for_go_live(client: httpx.Client, order_id: str) -> dict[str, Any]:
    run_id = run_started(client, "enterprise-onboarding", order_id)
    return wait_step(client, run_id, "provisioned", "waiting")


def test_a_signed_order_is_onboarded_and_billing_activated_when_the_migration_is_done(
    people: dict[str, httpx.Client],
) -> None:
    crm, olive = people["crm"], people["olive"]
    account = unique("acme")
    order_id = sign_order(crm, account)
    run = waiting_for_go_live(olive, order_id)
    outputs = {step: s["output"] for step, s in steps(run).items()}
    assert outputs["validate"] == {
        "account_id": account,
        "billing_rule": "on_go_live",
        "total": "48000",
        "currency": "EUR",
    }

    [project] = ledger(olive, "projects", account)
    assert project["id"] == outputs["project"]["id"]
    assert [m["name"] for m in project["milestones"]] == ["Provision", "SSO", "Data migration", "Go-live"]
    [invoice] = ledger(olive, "invoices", account)
    assert invoice["id"] == outputs["go-live-invoice"]["id"]
    assert (invoice["status"], invoice["amount_due"], invoice["number"]) == ("draft", "48000", f"GL-{order_id}")

    # Tasks reported done that are not the data migration, or that belong to someone else, change nothing.
    send_event(crm, "implementation_task", "updated", task_update(account, "Provision tenant", "done"), "psa/acme")
    other = unique("globex")
    send_event(crm, "implementation_task", "updated", task_update(other, "Migrate data", "done"), "psa/acme")
    send_event(crm, "implementation_task", "updated", task_update(account, "Migrate data", "in_progress"), "psa/acme")
    run = wait_step(olive, run["id"], "provisioned", "waiting")
    assert run["status"] == "running"
    assert ledger_record(olive, "invoices", invoice["id"])["status"] == "draft"

    send_event(crm, "implementation_task", "updated", task_update(account, "Migrate data", "done"), "psa/acme")
    run = wait_run(olive, run["id"], "succeeded")
    assert step_statuses(run) == {
        "validate": "succeeded",
        "project": "succeeded",
        "go-live-invoice": "succeeded",
        "provisioned": "succeeded",
        "go-live-milestone": "succeeded",
        "tell-customer": "succeeded",
        "activate-billing": "succeeded",
        "activate-released": "skipped",
        "release-hold": "skipped",
        "delay-review": "skipped",
    }
    activated = ledger_record(olive, "invoices", invoice["id"])
    assert activated["status"] == "open" and not activated["on_hold"]
    milestones = {m["name"]: m["status"] for m in ledger_record(olive, "projects", project["id"])["milestones"]}
    assert milestones["Go-live"] == "done"
    assert runs_of(olive, "provisioning-delay", f"{account}:configure-sso") == []


def test_a_non_standard_sso_request_pauses_billing_and_brings_in_the_specialists(
    people: dict[str, httpx.Client],
) -> None:
    crm, olive = people["crm"], people["olive"]
    account = unique("initech")
    order_id = sign_order(crm, account, total="96000")
    onboarding = waiting_for_go_live(olive, order_id)
    project_id = steps(onboarding)["project"]["output"]["id"]
    invoice_id = steps(onboarding)["go-live-invoice"]["output"]["id"]

    blocked = task_update(
        account,
        "Configure SSO",
        "blocked",
        project_id=project_id,
        milestone="SSO",
        blocked_reason="non-standard SSO request (custom SAML attributes)",
        attributes={"invoice_id": invoice_id},
    )
    send_event(crm, "implementation_task", "updated", blocked, "psa/acme")
    delay = wait_run(olive, run_started(olive, "provisioning-delay", blocked["id"]), "succeeded")
    assert step_statuses(delay) == {
        "hold-invoice": "succeeded",
        "milestone-blocked": "succeeded",
        "tell-customer-success": "succeeded",
    }
    held = ledger_record(olive, "invoices", invoice_id)
    assert held["on_hold"] is True and held["status"] == "on_hold"
    assert held["hold_reason"] == "Configure SSO is blocked: non-standard SSO request (custom SAML attributes)"
    milestones = {m["name"]: m["status"] for m in ledger_record(olive, "projects", project_id)["milestones"]}
    assert milestones["SSO"] == "blocked" and milestones["Go-live"] != "done"

    escalation: dict[str, Any] = {
        "id": f"{account}:ESC-1",
        "account_id": account,
        "reason": "custom SAML attributes need an identity specialist",
        "target_team": "specialists",
        "attributes": {"project_id": project_id, "specialist": "priya (identity)", "hours": 4},
    }
    send_event(crm, "escalation", "opened", escalation, "itsm/acme")
    specialists = wait_run(olive, run_started(olive, "specialist-escalation", escalation["id"]), "succeeded")
    posting = ledger_record(olive, "time-postings", steps(specialists)["post-time"]["output"]["id"])
    assert posting["project_id"] == project_id
    assert (posting["person"], posting["hours"]) == ("priya (identity)", "4")
    assert posting["activity"] == f"escalation {escalation['id']}: custom SAML attributes need an identity specialist"

    # Billing stays paused while the onboarding waits: the go-live invoice is neither activated nor released.
    onboarding = show_run(olive, onboarding["id"])
    assert onboarding["status"] == "running" and step_statuses(onboarding)["provisioned"] == "waiting"
    assert ledger_record(olive, "invoices", invoice_id)["status"] == "on_hold"

    # A task that is blocked without naming an invoice starts nothing.
    unnamed = task_update(account, "Provision tenant", "blocked", blocked_reason="no capacity")
    send_event(crm, "implementation_task", "updated", unnamed, "psa/acme")
    sso_done = task_update(account, "Configure SSO", "done")
    send_event(crm, "implementation_task", "updated", sso_done, "psa/acme")
    migrated = task_update(account, "Migrate data", "done")
    send_event(crm, "implementation_task", "updated", migrated, "psa/acme")
    onboarding = wait_run(olive, onboarding["id"], "succeeded")
    assert runs_of(olive, "provisioning-delay", unnamed["id"]) == []
    # Go-live releases the hold and activates the invoice.
    assert {s: step_statuses(onboarding)[s] for s in ("activate-billing", "release-hold", "activate-released")} == {
        "activate-billing": "failed",
        "release-hold": "succeeded",
        "activate-released": "succeeded",
    }
    activated = ledger_record(olive, "invoices", invoice_id)
    assert activated["status"] == "open" and activated["on_hold"] is False and activated.get("hold_reason") is None
    milestones = {m["name"]: m["status"] for m in ledger_record(olive, "projects", project_id)["milestones"]}
    assert milestones["Go-live"] == "done"


def test_a_blocked_task_naming_an_unknown_invoice_fails_its_run_and_is_dead_lettered(
    people: dict[str, httpx.Client],
) -> None:
    crm, olive = people["crm"], people["olive"]
    account = unique("umbrella")
    blocked = task_update(
        account,
        "Configure SSO",
        "blocked",
        blocked_reason="IdP metadata missing",
        attributes={"invoice_id": "inv_nope"},
    )
    send_event(crm, "implementation_task", "updated", blocked, "psa/acme")
    run = wait_run(olive, run_started(olive, "provisioning-delay", blocked["id"]), "failed")
    assert step_statuses(run)["hold-invoice"] == "failed" and "inv_nope" in run["error"]
    assert step_statuses(run)["tell-customer-success"] != "succeeded"
    letters = olive.get("/v1/connectors/dead-letters", params={"status": "dead"}).json()["items"]
    [letter] = [letter for letter in letters if letter["run_id"] == run["id"]]
    assert letter["operation"] == "ledger.hold_invoice" and letter["params"]["invoice"] == "inv_nope"


def test_escalations_to_other_teams_or_without_a_project_post_no_time(people: dict[str, httpx.Client]) -> None:
    crm, olive = people["crm"], people["olive"]
    account = unique("hooli")
    project = crm.post("/v1/ledger/projects", json={"account_id": account, "name": "Onboarding"})
    assert project.status_code == 201, project.text
    project_id = project.json()["id"]
    billed_to = {"project_id": project_id}
    to_support: dict[str, Any] = {"id": f"{account}:ESC-1", "reason": "password reset", "target_team": "support"}
    no_project: dict[str, Any] = {"id": f"{account}:ESC-2", "reason": "SAML debugging", "target_team": "specialists"}
    billable: dict[str, Any] = {**no_project, "id": f"{account}:ESC-3", "attributes": billed_to}
    to_support["attributes"] = billed_to
    for escalation in (to_support, no_project, billable):
        send_event(crm, "escalation", "opened", escalation, "itsm/acme")
    run = wait_run(olive, run_started(olive, "specialist-escalation", billable["id"]), "succeeded")
    assert runs_of(olive, "specialist-escalation", to_support["id"]) == []
    assert runs_of(olive, "specialist-escalation", no_project["id"]) == []
    posting = ledger_record(olive, "time-postings", steps(run)["post-time"]["output"]["id"])
    assert (posting["project_id"], posting["person"], posting["hours"]) == (project_id, "specialist team", "1")
