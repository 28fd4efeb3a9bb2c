"""Decision records checked against the audit log on real stores: a record edited, settled or removed behind
Opsrail's back is named, and everything Opsrail itself does (deciding in runs, approvals, overrides, retention)
verifies."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from opsrail.cli import app
from opsrail.services import RetentionService
from opsrail.storage import SqlRetentionStore
from opsrail.storage._tables import decision_records
from opsrail.wiring import Container
from tests.storage.test_decisions import PLAYBOOK, TABLE, write
from tests.support import FakeClock, drain

POLICY = """
decisions:
  credit-tier:
    tier: approval
    approval:
      - when: "output.credit <= 500.0"
        tier: autonomous
      - roles: [finance_controller]
"""


def decisions(container: Container, tmp_path: Path) -> dict[str, str]:
    """Records of every kind: acted on alone, approved in a run, overridden (with personal data in the reason)."""
    container.decisions.publish_table(write(tmp_path, "t.yaml", TABLE), "ops")
    container.decisions.apply_policies(write(tmp_path, "policy.yaml", POLICY), "ops")
    container.automation.publish(write(tmp_path, "p.yaml", PLAYBOOK), "ops")
    run_id = container.automation.start("triage", {"amount": 90_000.0})
    drain(container)
    [task] = container.automation.tasks()
    container.automation.decide(task["id"], approve=True, by="fiona")
    drain(container)
    [approved] = container.decisions.records(run_id=run_id)
    acted = container.decisions.evaluate_and_record("credit-tier", {"amount": 10.0})
    other = container.decisions.evaluate_and_record("credit-tier", {"amount": 20.0})
    container.decisions.override(other["id"], {"band": "premium"}, "asked by ann@example.com", "dana")
    return {"approved": approved["id"], "acted": acted["id"], "overridden": other["id"]}


def verified(container: Container) -> dict[str, Any]:
    return container.decisions.verify_records(container.audit.export())


def change(container: Container, statement: str, **values: object) -> None:
    with container.engine.begin() as conn:
        conn.execute(sa.text(statement), values)


def test_what_opsrail_does_verifies(container: Container, clock: FakeClock, tmp_path: Path) -> None:
    ids = decisions(container, tmp_path)
    report = verified(container)
    assert report["ok"] and report["checked"] == report["audited"] == 3 and report["problems"] == []
    # Retention drops the records' inputs; what was audited is untouched.
    clock.advance(days=40)
    retention = RetentionService(SqlRetentionStore(container.engine), clock, {"decision_records": timedelta(days=30)})
    retention.audit = container.audit  # its entry says which records lost their inputs
    assert retention.run()["kinds"]["decision_records"]["rows"] == 3
    assert container.decisions.record(ids["acted"])["inputs"] == {}
    assert verified(container)["ok"]


def test_a_record_changed_behind_opsrails_back_is_named(container: Container, tmp_path: Path) -> None:
    ids = decisions(container, tmp_path)
    change(container, "UPDATE decision_records SET confidence = 0.5, route = 'review' WHERE id = :id", id=ids["acted"])
    change(container, "UPDATE decision_records SET reviewed_by = 'mallory' WHERE id = :id", id=ids["approved"])
    change(container, "UPDATE decision_records SET status = 'accepted' WHERE id = :id", id=ids["acted"])
    report = verified(container)
    assert not report["ok"]
    found = {(p["kind"], p["record"], p.get("field")): p for p in report["problems"]}
    confidence = found["altered", ids["acted"], "confidence"]
    assert (confidence["recorded"], confidence["audited"]) == (0.5, 1.0)
    assert ("altered", ids["acted"], "route") in found
    assert ("settled_without_audit", ids["acted"], "status") in found
    who = found["settlement_altered", ids["approved"], "reviewed_by"]
    assert (who["recorded"], who["audited"]) == ("mallory", "fiona")
    assert report["problems_by_kind"] == {"altered": 2, "settled_without_audit": 1, "settlement_altered": 1}


def test_inputs_changed_or_emptied_without_retention_are_named(container: Container, tmp_path: Path) -> None:
    ids = decisions(container, tmp_path)
    inputs = json.dumps({"amount": 10.0, "premium": True})
    change(container, "UPDATE decision_records SET inputs = :inputs WHERE id = :id", id=ids["acted"], inputs=inputs)
    change(container, "UPDATE decision_records SET inputs = :inputs WHERE id = :id", id=ids["approved"], inputs="{}")
    report = verified(container)
    assert {(p["kind"], p["record"], p["field"]) for p in report["problems"]} == {
        ("altered", ids["acted"], "inputs"),
        ("altered", ids["approved"], "inputs"),  # emptied, but no retention says so
    }
    assert all(len(p["recorded"]) == len(p["audited"]) == 64 for p in report["problems"])  # digests, not the data


def test_a_record_removed_or_slipped_in_is_named(container: Container, tmp_path: Path) -> None:
    ids = decisions(container, tmp_path)
    change(container, "DELETE FROM decision_records WHERE id = :id", id=ids["overridden"])
    change(
        container,
        "UPDATE decision_records SET outputs = :outputs WHERE id = :id",
        id=ids["approved"],
        outputs=json.dumps({"band": "small", "credit": 0.0}),
    )
    with container.engine.begin() as conn:  # a copy of a record under a new id, as someone with write access might
        query = sa.select(decision_records).where(decision_records.c.id == ids["acted"])
        row = dict(conn.execute(query).mappings().one())
        conn.execute(decision_records.insert().values({**row, "id": "dec-forged", "idempotency_key": None}))
    report = verified(container)
    kinds = {(p["kind"], p["record"]) for p in report["problems"]}
    assert kinds == {
        ("missing", ids["overridden"]),
        ("not_audited", "dec-forged"),
        ("altered", ids["approved"]),
    }


def test_the_cli_says_what_differs_and_exits_1(
    container: Container, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = decisions(container, tmp_path)
    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSRAIL_DATABASE_URL", database_url)
    runner = CliRunner()
    good = runner.invoke(app, ["decisions", "records", "verify"])
    assert good.exit_code == 0, good.output
    assert "3 decision record(s) checked against 3 audited decision(s)" in good.stdout
    assert "audit chain verified" in good.stdout
    change(container, "UPDATE decision_records SET confidence = 0.25 WHERE id = :id", id=ids["acted"])
    bad = runner.invoke(app, ["decisions", "records", "verify"])
    assert bad.exit_code == 1
    assert f"{ids['acted']}: confidence is 0.25 in the record, 1.0 in audit entry" in bad.stdout
    as_json = json.loads(runner.invoke(app, ["decisions", "records", "verify", "--json"]).stdout)
    assert as_json["ok"] is False and as_json["chain"]["ok"] is True
    assert as_json["problems"][0]["field"] == "confidence"
