"""The governance commands end to end: policies test, publish, show and check; users; delegations; and the CLI's
own authorization (a person acts with their directory roles)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from opsrail.cli import app
from opsrail.services import reference_cases, reference_policies
from opsrail.settings import Settings
from opsrail.wiring import build
from tests.storage.test_audit import tampering

PLAYBOOK = """
id: credit
version: 1
steps:
  - id: approve
    approval: {roles: [finance_controller]}
"""


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSRAIL_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    return runner


def copy_reference(tmp_path: Path, extra: str = "") -> Path:
    policy = tmp_path / "policies.cedar"
    policy.write_text(reference_policies() + extra)
    (tmp_path / "policies.tests.yaml").write_text(reference_cases())
    return policy


def test_policies_are_tested_published_and_enforced(run: CliRunner, tmp_path: Path) -> None:
    policy = copy_reference(tmp_path)
    tested = run.invoke(app, ["policies", "test", str(policy)])
    assert tested.exit_code == 0, tested.output
    assert "ok   an operator starts runs: allow by operator-operates-and-configures" in tested.stdout

    # Let auditors start runs: the reference case "an auditor cannot start a run" now fails, so nothing is published.
    loose = copy_reference(
        tmp_path, '\npermit(principal in Opsrail::Role::"auditor", action == Opsrail::Action::"run.start", resource);\n'
    )
    failing = run.invoke(app, ["policies", "test", str(loose), "--json"])
    assert failing.exit_code == 1, failing.output
    assert failing.stdout, failing.output
    assert [f["name"] for f in json.loads(failing.stdout)["failed"]] == ["an auditor cannot start a run"]
    refused = run.invoke(app, ["policies", "publish", str(loose)])
    assert refused.exit_code == 2 and "1 of 17 policy test cases fail" in refused.stderr

    # Deny operators publishing playbooks; publish with matching cases; the CLI obeys at once.
    strict = tmp_path / "strict.cedar"
    strict.write_text(
        reference_policies()
        + '\n@id("no-playbooks-for-operators")\n'
        + 'forbid(principal in Opsrail::Role::"operator", action == Opsrail::Action::"playbook.publish", resource);\n'
    )
    cases = tmp_path / "strict.tests.yaml"
    cases.write_text(
        "cases:\n  - {name: operators do not publish, principal: {roles: [operator]}, action: playbook.publish, "
        "allow: false}\n"
    )
    published = run.invoke(app, ["policies", "publish", str(strict), "--json"])
    assert published.exit_code == 0, published.output
    assert json.loads(published.stdout)["version"] == 1
    assert run.invoke(app, ["users", "create", "olive", "--role", "operator"]).exit_code == 0
    book = tmp_path / "credit.yaml"
    book.write_text(PLAYBOOK)
    denied = run.invoke(app, ["playbooks", "publish", str(book), "--as", "olive"])
    assert denied.exit_code == 3 and "olive (operator) may not playbook.publish" in denied.stderr
    assert run.invoke(app, ["playbooks", "publish", str(book)]).exit_code == 0  # a local admin still may
    shown = run.invoke(app, ["policies", "show"])
    assert "no-playbooks-for-operators" in shown.stdout and "# version 1 from" in shown.stdout
    listed = json.loads(run.invoke(app, ["policies", "list", "--json"]).stdout)["items"]
    assert [p["version"] for p in listed] == [1]
    check = run.invoke(app, ["policies", "check", "playbook.publish", "--role", "operator"])
    assert check.exit_code == 1 and check.stdout.startswith("deny by no-playbooks-for-operators")
    assert run.invoke(app, ["policies", "check", "run.start", "--role", "operator"]).exit_code == 0
    schema = json.loads(run.invoke(app, ["policies", "schema", "--json"]).stdout)
    assert schema["actions"]["task.decide"]["resource"] == "Task"


def test_people_approve_from_the_cli_with_their_directory_roles(run: CliRunner, tmp_path: Path) -> None:
    for name, role in [("olive", "operator"), ("fiona", "finance_controller"), ("aude", "auditor")]:
        made = run.invoke(app, ["users", "create", name, "--role", role, "--json"])
        assert made.exit_code == 0 and json.loads(made.stdout)["roles"] == [role]
    assert run.invoke(app, ["users", "create", "x", "--role", "wizard"]).exit_code == 2
    book = tmp_path / "credit.yaml"
    book.write_text(PLAYBOOK)
    assert run.invoke(app, ["playbooks", "publish", str(book)]).exit_code == 0
    assert run.invoke(app, ["runs", "start", "credit", "--as", "aude"]).exit_code == 3  # an auditor only reads
    started = run.invoke(app, ["runs", "start", "credit", "--as", "olive", "--json"])
    assert started.exit_code == 0, started.output
    container = build(Settings())
    asyncio.run(container.runner.tick())
    [task] = container.automation.tasks()
    container.close()
    own = run.invoke(app, ["tasks", "approve", task["id"], "--as", "olive"])
    assert own.exit_code == 3 and "may not task.decide" in own.stderr
    approved = run.invoke(app, ["tasks", "approve", task["id"], "--as", "fiona", "--json"])
    assert approved.exit_code == 0, approved.output

    delegated = run.invoke(app, ["delegations", "create", "--to", "bob", "--until", "P7D", "--as", "fiona", "--json"])
    assert delegated.exit_code == 0, delegated.output
    record = json.loads(delegated.stdout)
    assert record["owner"] == "fiona" and record["roles"] == ["finance_controller"]
    bad = run.invoke(app, ["delegations", "create", "--to", "bob", "--until", "soon", "--as", "fiona"])
    assert bad.exit_code == 2 and "not a date" in bad.stderr
    others = run.invoke(
        app, ["delegations", "create", "--from", "fiona", "--to", "eve", "--until", "P1D", "--as", "olive"]
    )
    assert others.exit_code == 3
    listed = json.loads(run.invoke(app, ["delegations", "list", "--json"]).stdout)["items"]
    assert [d["delegate"] for d in listed] == ["bob"]
    assert run.invoke(app, ["delegations", "revoke", record["id"], "--as", "fiona"]).exit_code == 0
    users = json.loads(run.invoke(app, ["users", "list", "--json"]).stdout)["items"]
    assert {u["name"] for u in users} == {"olive", "fiona", "aude"}
    assert run.invoke(app, ["tasks", "list", "--as", "aude"]).exit_code == 0
    assert run.invoke(app, ["users", "disable", "aude"]).exit_code == 0
    disabled = run.invoke(app, ["tasks", "list", "--as", "aude"])
    assert disabled.exit_code == 2 and "disabled" in disabled.stderr


TABLE = """
name: credit-recommendation
version: 1
hit_policy: first
inputs:
  severity: int
  arr: double
outputs:
  credit: double
rules:
  - id: sev1-large-account
    when: "severity == 1 && arr >= 100000.0"
    then: {credit: 9000.0}
  - id: sev1
    when: "severity == 1"
    then: {credit: 3000.0}
  - id: otherwise
    when: "true"
    then: {credit: 0.0}
"""

SEV1_CREDIT = """
id: sev1-credit
version: 1
steps:
  - id: recommend
    decide: credit-recommendation
    with: {severity: "${ run.input.severity }", arr: "${ double(run.input.arr) }"}
  - id: approve
    needs: [recommend]
    approval:
      roles: [finance_controller]
      rules:
        - when: "steps.recommend.output.credit <= 500.0"
          tier: autonomous
        - when: "steps.recommend.output.credit <= 5000.0"
          roles: [finance_controller]
        - roles: [finance_controller, approver]
          count: 2
          require: [finance_controller]
  - id: book
    needs: [approve]
    action: core.set
    with: {credit: "${ steps.recommend.output.credit }"}
"""


def test_the_governed_credit_story_end_to_end(run: CliRunner, tmp_path: Path) -> None:
    """An operator requests credits the AI recommends; the right people approve them; an auditor verifies and
    exports the trail, in which the recommendation, its confidence and each person's act appear in order; a
    tampered database fails verification with the entry named."""
    for name, role in [
        ("olive", "operator"),
        ("fiona", "finance_controller"),
        ("ann", "approver"),
        ("aude", "auditor"),
    ]:
        assert run.invoke(app, ["users", "create", name, "--role", role]).exit_code == 0
    (tmp_path / "table.yaml").write_text(TABLE)
    (tmp_path / "playbook.yaml").write_text(SEV1_CREDIT)
    assert run.invoke(app, ["decisions", "publish", str(tmp_path / "table.yaml")]).exit_code == 0
    assert run.invoke(app, ["playbooks", "publish", str(tmp_path / "playbook.yaml")]).exit_code == 0

    def start(arr: int) -> str:
        started = run.invoke(
            app, ["runs", "start", "sev1-credit", "--input", f'{{"severity": 1, "arr": {arr}}}', "--as", "olive"]
        )
        assert started.exit_code == 0, started.output
        return started.stdout.strip()

    def work() -> list[dict[str, object]]:
        container = build(Settings())
        for _ in range(5):
            asyncio.run(container.runner.tick())
        tasks = container.automation.tasks()
        container.close()
        return tasks

    def status(run_id: str) -> str:
        return str(json.loads(run.invoke(app, ["runs", "show", run_id, "--json"]).stdout)["status"])

    medium, large = start(20_000), start(250_000)
    tasks = {t["run_id"]: t for t in work()}
    assert tasks[medium]["required"] == 1 and tasks[large]["required"] == 2
    refused = run.invoke(app, ["tasks", "approve", str(tasks[medium]["id"]), "--as", "olive", "--comment", "mine"])
    assert refused.exit_code == 3 and "separation-of-duties" not in refused.stderr  # an operator lacks the role
    ok = run.invoke(app, ["tasks", "approve", str(tasks[medium]["id"]), "--as", "fiona", "--comment", "sev1 credit"])
    assert ok.exit_code == 0, ok.output
    assert (
        run.invoke(app, ["tasks", "approve", str(tasks[large]["id"]), "--as", "ann", "--comment", "ok"]).exit_code == 0
    )
    assert status(large) == "running"
    assert (
        run.invoke(app, ["tasks", "approve", str(tasks[large]["id"]), "--as", "fiona", "--comment", "ok"]).exit_code
        == 0
    )
    work()
    assert status(medium) == "succeeded" and status(large) == "succeeded"

    assert run.invoke(app, ["audit", "verify", "--as", "olive"]).exit_code == 3  # an operator does not audit
    verified = run.invoke(app, ["audit", "verify", "--as", "aude"])
    assert verified.exit_code == 0 and "audit chain verified" in verified.stdout
    exported = run.invoke(app, ["audit", "export", "--as", "aude"])
    assert exported.exit_code == 0
    entries = [json.loads(line) for line in exported.stdout.splitlines()]
    story = [
        (e["action"], e["actor"], e["details"].get("outputs"), e["details"].get("confidence"))
        for e in entries
        if e["details"].get("run") == large or e["subject"] == large
    ]
    assert story == [
        ("run.started", "olive", None, None),
        ("decision.made", None, {"credit": 9000.0}, 1.0),
        ("task.approved", "ann", None, None),
        ("task.approved", "fiona", None, None),
    ]
    latest = run.invoke(app, ["audit", "list", "--limit", "3", "--json", "--as", "aude"])
    assert [e["seq"] for e in json.loads(latest.stdout)] == [e["seq"] for e in entries[-3:]]

    container = build(Settings())
    victim = next(e["seq"] for e in entries if e["action"] == "decision.made" and e["details"]["run"] == large)
    with tampering(container.engine) as conn:
        conn.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE seq = :seq"), {"seq": victim})
    container.close()
    broken = run.invoke(app, ["audit", "verify", "--as", "aude"])
    assert broken.exit_code == 1 and f"audit chain broken at entry {victim}" in broken.stderr
