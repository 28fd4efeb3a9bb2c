"""Sev1 incident escalation over real HTTP against the Jira fake: the topic model classifies the incident (an unsure
answer becomes an operator's review), the router picks the team, the engineering defect is filed in Jira with the
team as a label, finance decides the credit when there is exposure, and the run waits for the resolution. Jira
failing for a while is retried; Jira refusing the defect dead-letters the call and pages on-call, and a replay files
it with the same idempotency key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.support import (
    Content,
    Opsrail,
    Vendors,
    audit_entries,
    connector_calls,
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

CONTENT = Content(playbooks=["sev1-escalation"], tables=["incident-router"], topic_model=True)
CONFIDENT_TITLE = "new laptop hardware broken"  # the demo topic model answers Hardware, well above its 0.55 floor
UNSURE_TITLE = "Checkout down for EU tenants"  # well below it: an operator reviews the topic


@pytest.fixture(scope="module")
def opsrail(tmp_path_factory: pytest.TempPathFactory, vendors: Vendors) -> Iterator[Opsrail]:
    yield from start_opsrail(tmp_path_factory.mktemp("sev1"), CONTENT, vendors.connectors())


def open_incident(crm: httpx.Client, title: str, **attributes: Any) -> dict[str, Any]:
    incident: dict[str, Any] = {"id": unique("acme:INC"), "title": title, "severity": 1, "status": "new"}
    if attributes:
        incident["attributes"] = attributes
    send_event(crm, "incident", "opened", incident, "monitoring/acme")
    return incident


def resolve(crm: httpx.Client, incident: dict[str, Any]) -> None:
    send_event(crm, "incident", "resolved", {**incident, "status": "resolved"}, "monitoring/acme")


def jira_issue(vendors: Vendors, key: str) -> dict[str, Any]:
    with vendors.jira() as jira:
        answer = jira.get(f"/issue/{key}")
        assert answer.status_code == 200, answer.text
        issue: dict[str, Any] = answer.json()
        marker = jira.get(f"/issue/{key}/properties/opsrail")
        assert marker.status_code == 200, marker.text
        issue["opsrail"] = marker.json()["value"]
        return issue


def jira_issues_with_key(vendors: Vendors, idempotency_key: str) -> list[str]:
    """Keys of the Jira issues that carry an idempotency key, searched as the connector searches."""
    jql = f'issue.property[opsrail].idempotency_key = "{idempotency_key}"'
    with vendors.jira() as jira:
        answer = jira.post("/search/jql", json={"jql": jql, "fields": ["key"], "maxResults": 50})
        assert answer.status_code == 200, answer.text
        return [str(issue["key"]) for issue in answer.json()["issues"]]


def test_a_sev1_files_the_defect_in_jira_and_finance_approves_the_credit(
    people: dict[str, httpx.Client], vendors: Vendors
) -> None:
    crm, olive, ann, fiona, aude = (people[p] for p in ("crm", "olive", "ann", "fiona", "aude"))
    incident = open_incident(crm, CONFIDENT_TITLE, premium_support=True, arr=120000)
    run_id = run_started(olive, "sev1-escalation", incident["id"])
    credit = open_task(olive, run_id, "credit-approval")
    run = wait_step(olive, run_id, "wait-resolution", "waiting")

    records = decision_records(olive, run_id)
    topic, route = records["incident-topic"], records["incident-router"]
    assert topic["route"] == "acted" and topic["outputs"]["label"] == "Hardware" and topic["confidence"] > 0.55
    assert route["outputs"] == {"team": "major-incident", "credit_exposure": 6000.0, "page_oncall": True}
    assert route["matched_rules"] == ["sev1-premium"]
    assert route["inputs"] == {"severity": 1, "topic": "Hardware", "premium_support": True, "arr": 120000.0}

    defect = steps(run)["defect"]["output"]
    issue = jira_issue(vendors, defect["key"])
    assert issue["fields"]["summary"] == CONFIDENT_TITLE
    assert issue["fields"]["labels"] == ["team-major-incident"]
    assert issue["fields"]["project"]["key"] == "ENG" and issue["fields"]["status"]["name"] == "To Do"
    assert jira_issues_with_key(vendors, issue["opsrail"]["idempotency_key"]) == [defect["key"]]
    assert issue["opsrail"]["idempotency_key"].startswith(f"{run_id}:defect")
    assert [c["details"]["outcome"] for c in connector_calls(aude, run_id, "defect")] == ["ok"]

    assert credit["roles"] == ["finance_controller"] and credit["required"] == 1
    assert decide(ann, credit["id"], True, "customer is furious").status_code == 403
    assert decide(fiona, credit["id"], True, "5% of ARR under the premium SLA").status_code == 200
    wait_step(olive, run_id, "credit-approval", "succeeded")

    resolve(crm, incident)
    run = wait_run(olive, run_id, "succeeded")
    assert step_statuses(run) == {
        "topic": "succeeded",
        "classify": "succeeded",
        "defect": "succeeded",
        "credit-approval": "succeeded",
        "wait-resolution": "succeeded",
        "page-oncall": "skipped",
        "escalate-finance": "skipped",
    }
    assert task_trail(aude, credit["id"]) == [("fiona", "task.approved")]


def test_an_unsure_topic_is_reviewed_by_an_operator_before_the_run_goes_on(
    people: dict[str, httpx.Client], vendors: Vendors
) -> None:
    crm, olive, fiona, aude = people["crm"], people["olive"], people["fiona"], people["aude"]
    incident = open_incident(crm, UNSURE_TITLE)
    run_id = run_started(olive, "sev1-escalation", incident["id"])
    review = open_task(olive, run_id, "topic")
    assert review["kind"] == "review" and review["roles"] == ["operator"]
    assert decision_records(olive, run_id)["incident-topic"]["route"] == "review"
    assert decide(fiona, review["id"], True, "looks right").status_code == 403
    corrected = decide(olive, review["id"], True, "checkout is a billing flow", value={"label": "Billing"})
    assert corrected.status_code == 200, corrected.text

    run = wait_step(olive, run_id, "wait-resolution", "waiting")
    assert step_statuses(run)["credit-approval"] == "skipped"  # no ARR known: no credit exposure
    records = decision_records(olive, run_id)
    assert records["incident-topic"]["status"] == "overridden"
    assert records["incident-topic"]["final_outputs"]["label"] == "Billing"
    assert records["incident-router"]["inputs"]["topic"] == "Billing"
    issue = jira_issue(vendors, steps(run)["defect"]["output"]["key"])
    assert issue["fields"]["labels"] == ["team-major-incident"] and issue["fields"]["summary"] == UNSURE_TITLE
    assert task_trail(aude, review["id"]) == [("olive", "task.approved")]

    resolve(crm, incident)
    wait_run(olive, run_id, "succeeded")


def test_jira_failing_for_a_while_is_retried_and_files_one_defect(
    people: dict[str, httpx.Client], vendors: Vendors
) -> None:
    crm, olive, aude = people["crm"], people["olive"], people["aude"]
    chaos = vendors.faults["jira"].inject(status=503, calls=1)
    incident = open_incident(crm, CONFIDENT_TITLE)
    run_id = run_started(olive, "sev1-escalation", incident["id"])
    run = wait_step(olive, run_id, "wait-resolution", "waiting", seconds=30)
    assert chaos.injected == 1
    outcomes = [c["details"]["outcome"] for c in connector_calls(aude, run_id, "defect")]
    assert outcomes == ["retryable", "ok"]
    defect = steps(run)["defect"]
    assert defect["attempt"] == 2
    issue = jira_issue(vendors, defect["output"]["key"])
    assert jira_issues_with_key(vendors, issue["opsrail"]["idempotency_key"]) == [defect["output"]["key"]]
    letters = olive.get("/v1/connectors/dead-letters", params={"status": "dead"}).json()["items"]
    assert [letter for letter in letters if letter["run_id"] == run_id] == []

    resolve(crm, incident)
    run = wait_run(olive, run_id, "succeeded")
    assert step_statuses(run)["page-oncall"] == "skipped"


def test_jira_refusing_the_defect_pages_oncall_and_a_replay_files_it_once(
    people: dict[str, httpx.Client], vendors: Vendors
) -> None:
    crm, olive, ann, aude = people["crm"], people["olive"], people["ann"], people["aude"]
    vendors.faults["jira"].inject(status=400, calls=1)
    incident = open_incident(crm, CONFIDENT_TITLE)
    run_id = run_started(olive, "sev1-escalation", incident["id"])
    run = wait_step(olive, run_id, "wait-resolution", "waiting")
    assert step_statuses(run)["defect"] == "failed" and step_statuses(run)["page-oncall"] == "succeeded"
    assert steps(run)["defect"]["attempt"] == 1  # a permanent refusal is not retried
    assert [c["details"]["outcome"] for c in connector_calls(aude, run_id, "defect")] == ["failed"]

    letters = olive.get("/v1/connectors/dead-letters", params={"status": "dead"}).json()["items"]
    [letter] = [letter for letter in letters if letter["run_id"] == run_id]
    assert letter["operation"] == "jira.create_issue" and letter["step_id"] == "defect"
    assert letter["params"]["labels"] == ["team-major-incident"] and letter["params"]["summary"] == CONFIDENT_TITLE
    assert jira_issues_with_key(vendors, letter["idempotency_key"]) == []

    assert ann.post(f"/v1/connectors/dead-letters/{letter['id']}:replay").status_code == 403
    replayed = olive.post(f"/v1/connectors/dead-letters/{letter['id']}:replay")
    assert replayed.status_code == 200, replayed.text
    [key] = jira_issues_with_key(vendors, letter["idempotency_key"])
    issue = jira_issue(vendors, key)
    assert issue["fields"]["labels"] == ["team-major-incident"] and issue["fields"]["summary"] == CONFIDENT_TITLE
    assert replayed.json()["result"]["key"] == key
    again = olive.post(f"/v1/connectors/dead-letters/{letter['id']}:replay")
    assert again.status_code == 409 and "replayed already" in again.json()["detail"]
    assert jira_issues_with_key(vendors, letter["idempotency_key"]) == [key]
    settled = olive.get("/v1/connectors/dead-letters", params={"status": "replayed"}).json()["items"]
    assert [item["id"] for item in settled if item["run_id"] == run_id] == [letter["id"]]
    trail = audit_entries(aude)
    assert [e["subject"] for e in trail if e["action"] == "connector.dead_lettered"].count(letter["id"]) == 1
    assert ("olive", "connector.replayed") in [(e["actor"], e["action"]) for e in trail if e["subject"] == letter["id"]]

    resolve(crm, incident)
    wait_run(olive, run_id, "succeeded")


def test_a_credit_finance_refuses_still_follows_the_incident_to_its_resolution(
    people: dict[str, httpx.Client],
) -> None:
    crm, olive, fiona, aude = people["crm"], people["olive"], people["fiona"], people["aude"]
    incident = open_incident(crm, CONFIDENT_TITLE, arr=50000)
    run_id = run_started(olive, "sev1-escalation", incident["id"])
    credit = open_task(olive, run_id, "credit-approval")
    assert decision_records(olive, run_id)["incident-router"]["outputs"]["credit_exposure"] == 1000.0
    assert decide(fiona, credit["id"], False, "the contract has no service credits").status_code == 200
    run = wait_step(olive, run_id, "credit-approval", "failed")
    assert run["status"] == "running" and step_statuses(run)["wait-resolution"] == "waiting"
    assert open_tasks(olive, run_id) == []
    assert task_trail(aude, credit["id"]) == [("fiona", "task.rejected")]

    resolve(crm, incident)
    run = wait_run(olive, run_id, "succeeded")
    assert step_statuses(run)["escalate-finance"] == "skipped"
