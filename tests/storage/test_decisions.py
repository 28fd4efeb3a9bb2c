"""The decision layer end to end on real stores: tables and models answer `decide` steps, confident decisions
act, unsure ones become review tasks with similar cases, and every decision is a record that says who settled it."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsrail.fakes.openai import create_app
from opsrail.model import Conflict, InvalidInput, NotFound
from opsrail.services import EventQuery
from opsrail.settings import Settings
from opsrail.wiring import Container, build
from tests.knowledge.conftest import serve_in_thread
from tests.support import FakeClock, SequentialIds, drain, ticket_sample

TABLE = """
name: credit-tier
version: 1
hit_policy: first
inputs:
  amount: {type: double}
  premium: {type: bool, default: false}
outputs:
  band: {type: string}
  credit: {type: double, default: 0.0}
rules:
  - id: large
    when: "amount > 5000.0"
    then: {band: "large", credit: "${ amount * 0.1 }"}
  - id: premium
    when: "premium"
    then: {band: "premium", credit: 100.0}
  - id: small
    when: "true"
    then: {band: "small"}
tests:
  - name: large amounts get ten percent
    inputs: {amount: 6000.0}
    expect: {band: large, credit: 600.0}
"""

PLAYBOOK = """
id: triage
version: 1
steps:
  - id: tier
    decide: credit-tier
    with: {amount: "${ run.input.amount }"}
  - id: book
    needs: [tier]
    action: core.set
    with: {band: "${ steps.tier.output.band }"}
"""

TRIAGE = """
id: ticket-triage
version: 1
steps:
  - id: classify
    decide: ticket-topic
    with: {text: "${ run.input.text }"}
  - id: route
    needs: [classify]
    action: core.set
    with: {queue: "${ steps.classify.output.label }"}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_table_answers_a_decide_step_and_the_decision_is_recorded(container: Container, tmp_path: Path) -> None:
    container.decisions.publish_table(write(tmp_path, "t.yaml", TABLE), "ops")
    container.automation.publish(write(tmp_path, "p.yaml", PLAYBOOK), "ops")
    run_id = container.automation.start("triage", {"amount": 7500.0})
    drain(container)
    run = container.automation.show(run_id)
    assert run["status"] == "succeeded"
    steps = {s["id"]: s for s in run["steps"]}
    assert steps["tier"]["output"]["band"] == "large" and steps["tier"]["output"]["credit"] == 750.0
    assert steps["book"]["output"] == {"band": "large"}
    [record] = container.decisions.records(run_id=run_id)
    assert record["decision"] == "credit-tier" and record["source"] == "table" and record["version"] == 1
    assert record["matched_rules"] == ["large"] and record["route"] == "acted" and record["status"] == "decided"
    assert record["inputs"] == {"amount": 7500.0}
    assert steps["tier"]["output"]["decision_record"] == record["id"]
    shown = container.decisions.record(record["id"])
    assert shown["outcome"]["run_status"] == "succeeded"


def test_a_published_table_version_never_changes(container: Container, tmp_path: Path) -> None:
    path = write(tmp_path, "t.yaml", TABLE)
    container.decisions.publish_table(path, "ops")
    container.decisions.publish_table(path, "ops")  # the same content again is fine
    with pytest.raises(Conflict):
        container.decisions.publish_table(
            write(
                tmp_path, "t2.yaml", TABLE.replace('band: "premium", credit: 100.0', 'band: "premium", credit: 200.0')
            ),
            "ops",
        )


def test_a_table_whose_own_tests_fail_is_not_published(container: Container, tmp_path: Path) -> None:
    broken = TABLE.replace("expect: {band: large, credit: 600.0}", "expect: {band: small}")
    with pytest.raises(InvalidInput, match="tests fail"):
        container.decisions.publish_table(write(tmp_path, "t.yaml", broken), "ops")


def test_an_unknown_decision_fails_the_step_with_a_clear_error(container: Container, tmp_path: Path) -> None:
    container.automation.publish(write(tmp_path, "p.yaml", PLAYBOOK), "ops")
    run_id = container.automation.start("triage", {"amount": 1.0})
    drain(container)
    run = container.automation.show(run_id)
    assert run["status"] == "failed"
    assert "no decision table or model named 'credit-tier'" in run["error"]
    with pytest.raises(NotFound):
        container.decisions.evaluate_and_record("credit-tier", {"amount": 1.0})


def test_an_approval_tier_picks_approvers_by_threshold_and_the_record_shows_who_accepted(
    container: Container, tmp_path: Path
) -> None:
    container.decisions.publish_table(write(tmp_path, "t.yaml", TABLE), "ops")
    container.decisions.apply_policies(
        write(
            tmp_path,
            "policy.yaml",
            """
decisions:
  credit-tier:
    tier: approval
    approval:
      - when: "output.credit <= 500.0"
        tier: autonomous
      - when: "output.credit <= 5000.0"
        roles: [finance_controller]
      - roles: [finance_controller, approver]
        count: 2
""",
        ),
        "ops",
    )
    container.automation.publish(write(tmp_path, "p.yaml", PLAYBOOK), "ops")
    small = container.automation.start("triage", {"amount": 100.0})
    large = container.automation.start("triage", {"amount": 90_000.0})
    drain(container)
    assert container.automation.show(small)["status"] == "succeeded"
    [task] = container.automation.tasks()
    assert task["run_id"] == large and task["kind"] == "approval" and task["required"] == 2
    assert task["roles"] == ["finance_controller", "approver"]
    assert task["context"]["recommendation"]["credit"] == 9000.0
    container.automation.decide(task["id"], approve=True, by="fiona")
    container.automation.decide(task["id"], approve=True, by="arun")
    drain(container)
    assert container.automation.show(large)["status"] == "succeeded"
    [record] = container.decisions.records(run_id=large)
    assert record["route"] == "approval" and record["status"] == "accepted" and record["reviewed_by"] == "arun"
    assert record["final_outputs"] == record["outputs"]


def test_overriding_an_acted_decision_keeps_the_reason(container: Container, tmp_path: Path) -> None:
    container.decisions.publish_table(write(tmp_path, "t.yaml", TABLE), "ops")
    record = container.decisions.evaluate_and_record("credit-tier", {"amount": 10.0})
    assert record["route"] == "acted" and record["outputs"]["band"] == "small"
    with pytest.raises(InvalidInput):
        container.decisions.override(record["id"], {"band": "premium"}, " ", "dana")
    with pytest.raises(InvalidInput) as wrong:
        container.decisions.override(record["id"], {"band": 7, "tier": "gold"}, "premium customer", "dana")
    assert [(e.path, e.message) for e in wrong.value.errors] == [
        ("$.value.band", "output 'band': expected a string, got integer 7"),
        ("$.value.tier", "'tier' is not an output of credit-tier (band, credit)"),
    ]
    with pytest.raises(InvalidInput, match="at least one output"):
        container.decisions.override(record["id"], {}, "premium customer", "dana")
    overridden = container.decisions.override(record["id"], {"band": "premium"}, "premium customer", "dana")
    assert overridden["status"] == "overridden" and overridden["final_outputs"] == {"band": "premium"}
    assert overridden["reason"] == "premium customer" and overridden["reviewed_by"] == "dana"
    with pytest.raises(Conflict) as again:
        container.decisions.override(record["id"], {"band": "small"}, "no, small", "dana")
    assert "is overridden by dana" in again.value.detail and "override it instead" not in (again.value.hint or "")
    assert [r["id"] for r in container.decisions.records(status="overridden")] == [record["id"]]


@pytest.mark.slow
def test_a_low_confidence_ticket_becomes_a_review_task_with_similar_cases(container: Container, tmp_path: Path) -> None:
    info = container.decisions.train_model(
        "text-classifier", ticket_sample(tmp_path), {"text": "Document", "label": "Topic_group"}, name="ticket-topic"
    )
    assert info["version"] == 1 and info["task"] == "text-classifier" and info["metrics"]["accuracy"] > 0.4
    container.decisions.apply_policies(
        write(
            tmp_path,
            "policy.yaml",
            "decisions:\n  ticket-topic: {tier: autonomous, min_confidence: 0.999, review: {roles: [operator]}}\n",
        ),
        "ops",
    )
    container.automation.publish(write(tmp_path, "p.yaml", TRIAGE), "ops")
    # A ticket that mixes topics (hardware, access, storage, a purchase), so the model is unsure of it (about 0.55).
    ambiguous = "new laptop for the project, access to the drive and a purchase order"
    run_id = container.automation.start("ticket-triage", {"text": ambiguous})
    drain(container)
    [task] = container.automation.tasks(mine="olive", my_roles=("operator",))
    assert task["kind"] == "review" and task["run_id"] == run_id
    context = task["context"]
    assert context["recommendation"]["label"] in info["thresholds"]
    assert 0.0 < context["confidence"] < 0.999 and "below" in context["why"]
    cases = [hit for hit in context["similar"] if hit["kind"] == "case"]
    assert cases and all(hit["score"] > 0 for hit in cases) and "label" in cases[0]["metadata"]
    assert context["summary"]["text"]
    assert container.automation.tasks(mine="oscar", my_roles=("finance_controller",)) == []
    container.automation.reassign(task["id"], "oscar", by="olive")
    assert [t["id"] for t in container.automation.tasks(mine="oscar")] == [task["id"]]
    assert container.automation.tasks(mine="olive", my_roles=("operator",)) == []

    with pytest.raises(InvalidInput, match="not an answer ticket-topic could give"):
        container.automation.decide(task["id"], approve=False, by="oscar", comment="it is storage", value={"topic": 1})
    assert container.automation.tasks(mine="oscar")[0]["status"] == "open"
    container.automation.decide(
        task["id"], approve=False, by="oscar", comment="it is storage", value={"label": "Storage"}
    )
    drain(container)
    run = container.automation.show(run_id)
    assert run["status"] == "succeeded"
    assert {s["id"]: s["output"] for s in run["steps"]}["route"] == {"queue": "Storage"}
    [record] = container.decisions.records(run_id=run_id)
    assert record["status"] == "overridden" and record["reviewed_by"] == "oscar"
    assert record["final_outputs"] == {"label": "Storage"} and record["reason"] == "it is storage"
    assert record["source"] == "model" and record["version"] == 1 and record["explanation"]
    assert any(entry["activity"] == "task.reassigned" for entry in run["timeline"])

    # The next ticket like it is shown the settled decision as a past case, with the answer a person gave.
    again = container.automation.start("ticket-triage", {"text": ambiguous + " now"})
    drain(container)
    [task] = [t for t in container.automation.tasks() if t["run_id"] == again]
    [past] = [hit for hit in task["context"]["similar"] if hit["kind"] == "decision"]
    assert past["id"] == record["id"] and past["metadata"]["answer"] == {"label": "Storage"}
    assert past["metadata"]["reviewed_by"] == "oscar" and past["source"] == f"decision:{record['id']}"

    # The text may also come under the column the model was trained on: the same answer, the same past cases.
    by_text = container.decisions.evaluate_and_record("ticket-topic", {"text": ambiguous})
    by_column = container.decisions.evaluate_and_record("ticket-topic", {"Document": ambiguous})
    assert by_column["outputs"] == by_text["outputs"]
    assert [hit["id"] for hit in by_column["similar"]] == [hit["id"] for hit in by_text["similar"]]
    assert by_column["summary"]["text"] == by_text["summary"]["text"]

    # An override may send the whole recommendation back with the answer changed (the console's form does).
    echoed = {**by_text["outputs"], "label": "Storage", "decision_record": by_text["id"]}
    assert container.decisions.override(by_text["id"], echoed, "storage", "oscar")["final_outputs"] == echoed
    with pytest.raises(InvalidInput) as no_answer:
        container.decisions.override(by_column["id"], {"confidence": 0.3}, "unsure", "oscar")
    assert [e.message for e in no_answer.value.errors] == ["give the answer as 'label'"]


@pytest.mark.slow
def test_the_reference_sev1_playbook_classifies_routes_and_asks_when_unsure(
    container: Container, tmp_path: Path
) -> None:
    import orjson

    import opsrail.decisions
    import opsrail.playbooks
    from opsrail.engine import CallContext
    from tests.support import incident_event

    filed: list[dict[str, object]] = []

    async def create_issue(params: dict[str, object], call: CallContext) -> object:
        filed.append({"key": call.idempotency_key, **params})
        return {"issue": f"ENG-{len(filed)}"}

    container.runner.operations.register("jira.create_issue", create_issue)
    container.decisions.train_model(
        "text-classifier", ticket_sample(tmp_path), {"text": "Document", "label": "Topic_group"}, name="incident-topic"
    )
    container.decisions.apply_policies(
        write(tmp_path, "policy.yaml", "decisions:\n  incident-topic: {min_confidence: 0.999}\n"), "ops"
    )
    container.decisions.publish_table(
        Path(opsrail.decisions.__file__).parent / "reference" / "incident-router.yaml", "ops"
    )
    container.automation.publish(Path(opsrail.playbooks.__file__).parent / "reference" / "sev1-escalation.yaml", "ops")
    event = incident_event(
        "sev1-1", severity=1, title="users cannot access the vpn", attributes={"premium_support": True, "arr": 100000}
    )
    container.ingestion.ingest_single(orjson.dumps(event))
    drain(container)
    [run] = container.automation.runs()
    [review] = container.automation.tasks()
    assert review["kind"] == "review" and review["step_id"] == "topic"
    container.automation.decide(
        review["id"], approve=False, by="olive", comment="vpn is access", value={"label": "Access"}
    )
    drain(container)
    [approval] = container.automation.tasks("finance_controller")
    assert approval["step_id"] == "credit-approval"
    container.automation.decide(approval["id"], approve=True, by="fiona")
    drain(container)
    detail = container.automation.show(run["id"])
    steps = {s["id"]: s for s in detail["steps"]}
    assert steps["classify"]["output"]["team"] == "major-incident"
    assert steps["classify"]["output"]["credit_exposure"] == 5000.0
    assert steps["credit-approval"]["status"] == "succeeded"
    assert filed and filed[0]["labels"] == ["team-major-incident"]
    assert steps["wait-resolution"]["status"] == "waiting"
    records = container.decisions.records(run_id=run["id"])
    assert sorted((r["decision"], r["status"]) for r in records) == [
        ("incident-router", "decided"),
        ("incident-topic", "overridden"),
    ]


def test_a_language_model_summary_keeps_its_prompt_and_answer_in_the_record(
    database_url: str, tmp_path: Path, clock: FakeClock
) -> None:
    app = create_app(api_key="sk-test")
    with serve_in_thread(app) as url:
        settings = Settings(
            home=tmp_path, database_url=database_url, summary_url=f"{url}/v1", summary_api_key="sk-test"
        )
        container = build(settings, migrate=True, clock=clock, ids=SequentialIds())
        try:
            container.decisions.publish_table(write(tmp_path, "t.yaml", TABLE), "ops")
            container.decisions.apply_policies(
                write(tmp_path, "policy.yaml", "decisions:\n  credit-tier: {tier: advisory}\n"), "ops"
            )
            record = container.decisions.evaluate_and_record("credit-tier", {"amount": 9000.0})
        finally:
            container.close()
    assert record["route"] == "advisory" and record["status"] == "pending"
    summary = record["summary"]
    assert summary["provider"] != "extractive" and summary["model"]
    assert "credit-tier" in summary["prompt"] and summary["answer"] == summary["text"]
    [request] = app.state.requests
    assert request["model"] == "gpt-4o-mini"
    assert "credit-tier" in request["messages"][-1]["content"]
    assert "sk-test" not in str(record)


def test_records_and_audit_entries_keep_no_personal_data(database_url: str, tmp_path: Path, clock: FakeClock) -> None:
    settings = Settings(home=tmp_path, database_url=database_url, redact_fields=["account_owner"])
    container = build(settings, migrate=True, clock=clock, ids=SequentialIds())
    try:
        container.decisions.publish_table(
            write(
                tmp_path,
                "t.yaml",
                """
name: echo
version: 1
inputs:
  note: string
  account_owner: string
outputs:
  seen: {type: bool}
rules:
  - id: always
    when: "size(note) > 0 && size(account_owner) > 0"
    then: {seen: true}
""",
            ),
            "ops",
        )
        record = container.decisions.evaluate_and_record(
            "echo", {"note": "refund card 4111 1111 1111 1111 for jane@acme.com", "account_owner": "Jane Doe"}
        )
        assert record["outputs"] == {"seen": True}
        assert record["inputs"] == {"note": "refund card [card] for [email]", "account_owner": "[redacted]"}
        [entry] = [e for e in container.audit.export() if e["action"] == "decision.made"]
        assert "4111" not in str(entry) and "jane@acme.com" not in str(entry)
        assert container.audit.verify().ok
    finally:
        container.close()


def test_an_autonomous_decision_overridden_too_often_is_demoted_until_a_person_promotes_it(
    container: Container, tmp_path: Path
) -> None:
    container.decisions.publish_table(write(tmp_path, "t.yaml", TABLE), "ops")
    policy = write(tmp_path, "policy.yaml", "decisions:\n  credit-tier: {demotion: {override_rate: 0.4, window: 5}}\n")
    container.decisions.apply_policies(policy, "ops")
    records = [container.decisions.evaluate_and_record("credit-tier", {"amount": 10.0}) for _ in range(5)]
    container.decisions.override(records[0]["id"], {"band": "premium"}, "premium customer", "dana")
    container.decisions.override(records[1]["id"], {"band": "premium"}, "premium customer", "dana")
    assert container.decisions.policy("credit-tier").tier == "autonomous"  # 2 of 5 is not above 40%
    container.decisions.override(records[2]["id"], {"band": "premium"}, "premium customer", "dana")
    demoted = container.decisions.policy("credit-tier")
    assert demoted.tier == "approval" and demoted.demoted and "60%" in demoted.demoted
    entry = [e for e in container.audit.export() if e["action"] == "decision_policy.demoted"]
    assert [e["subject"] for e in entry] == ["credit-tier"]
    # The alert: an escalation event a playbook can be triggered by.
    [alert] = container.ingestion.events.find(EventQuery(source="opsrail/governance"))
    assert alert.type == "com.opsrail.escalation.opened" and alert.kind == "escalation"
    assert alert.data["attributes"] == {
        "alert": "decision.demoted",
        "subject": "credit-tier",
        "override_rate": 0.6,
        "window": 5,
    }
    assert container.decisions.evaluate_and_record("credit-tier", {"amount": 10.0})["route"] == "approval"
    container.decisions.apply_policies(policy, "ops")  # promotion back is a person's act
    assert container.decisions.policy("credit-tier").tier == "autonomous"
    assert container.decisions.evaluate_and_record("credit-tier", {"amount": 10.0})["route"] == "acted"


def test_pruning_keeps_the_newest_versions_and_every_registration(container: Container, tmp_path: Path) -> None:
    data = ticket_sample(tmp_path, rows=300)
    columns = {"text": "Document", "label": "Topic_group"}
    for _ in range(3):
        container.decisions.train_model("text-classifier", data, columns, name="topic")
    container.decisions.train_model("text-classifier", data, columns, name="other")
    ticket = {"text": "my laptop screen is broken"}
    old = container.decisions.evaluate_and_record("topic", ticket, version=1)  # loaded before it is pruned

    with pytest.raises(InvalidInput, match="at least 1"):
        container.decisions.prune_models(keep=0)
    with pytest.raises(NotFound, match="no model 'nope'"):
        container.decisions.prune_models(keep=1, name="nope")
    planned = container.decisions.prune_models(keep=1, dry_run=True)
    assert [(p["name"], p["version"]) for p in planned["pruned"]] == [("topic", 2), ("topic", 1)]
    assert planned["bytes"] > 100_000 and planned["dry_run"]
    assert container.decisions.evaluate_and_record("topic", ticket, version=1)["outputs"] == old["outputs"]

    pruned = container.decisions.prune_models(keep=1, by="olive")
    assert pruned["pruned"] == planned["pruned"] and pruned["bytes"] == planned["bytes"]
    assert container.decisions.prune_models(keep=1)["pruned"] == []  # nothing left to prune
    sizes = {(v["name"], v["version"]): v["bytes"] for v in container.decisions.store.model_versions()}
    assert sizes[("topic", 1)] == sizes[("topic", 2)] == 0 and sizes[("topic", 3)] > 100_000

    with pytest.raises(Conflict, match="topic version 1 was pruned"):
        container.decisions.evaluate_and_record("topic", ticket, version=1)
    assert container.decisions.evaluate_and_record("topic", ticket)["version"] == 3
    info = container.decisions.model_info("topic", 1)
    assert info["pruned_by"] == "olive" and info["pruned_at"] is not None and info["metrics"]["accuracy"] > 0
    assert container.decisions.record(old["id"])["version"] == 1  # the record still names the version
    history = container.decisions.model_versions("topic")
    assert [(v["version"], v["pruned_at"] is not None) for v in history] == [(3, False), (2, True), (1, True)]
    assert history[0]["figures"]["accuracy"] == info["metrics"]["accuracy"] and history[0]["figures"]["n"] == 300
    assert history[0]["data_source"] == str(data) and len(history[0]["data_sha256"]) == 64
    with pytest.raises(NotFound):
        container.decisions.model_versions("nope")
    audited = [e for e in container.audit.export() if e["action"] == "model.pruned"]
    assert sorted(e["subject"] for e in audited) == ["topic@1", "topic@2"] and container.audit.verify().ok


def test_describe_says_what_is_missing(container: Container) -> None:
    table = Path(__file__).parents[2] / "src" / "opsrail" / "decisions" / "reference" / "credit-tier.yaml"
    container.decisions.publish_table(table)
    assert container.decisions.describe("credit-tier")["inputs"]["amount"]["required"] is True
    with pytest.raises(NotFound, match="no decision table or model named 'nope'"):
        container.decisions.describe("nope")
    with pytest.raises(NotFound, match="decision table 'credit-tier' has no version 7"):
        container.decisions.describe("credit-tier", 7)
