"""Open runs scored by a model trained on an export of the finished ones: the loop export → train → score, on
SQLite and PostgreSQL, with the engine running the runs and people deciding the approvals."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsrail.cli import app
from opsrail.model import InvalidInput, NotFound
from opsrail.wiring import Container
from tests.insights.test_insights_store import CREDIT, accounts
from tests.support import FakeClock, drain, publish


def history(container: Container, clock: FakeClock, tmp_path: Path, runs: int = 80) -> None:
    """``runs`` credits started ten minutes apart, the regions alternating; each decided when its region decides:
    the EU's after 10 hours (rejecting 3 in 5), the US's after 1 hour (rejecting 1 in 10)."""
    accounts(container)
    publish(container, tmp_path, CREDIT)
    start = clock.now()
    schedule: list[tuple[timedelta, int, str]] = []
    for n in range(runs):
        region = ("EU", "US")[n % 2]
        at = timedelta(minutes=10 * n)
        schedule.append((at, 0, f"start {n} {region}"))
        schedule.append((at + timedelta(hours=10 if region == "EU" else 1), 1, f"decide {n} {region}"))
    started: dict[int, str] = {}
    for at, _, what in sorted(schedule):
        clock.current = start + at
        verb, number, region = what.split()
        n = int(number)
        if verb == "start":
            started[n] = container.automation.start(
                "credit-check", {"account_id": f"{region.lower()}-{n % 5}", "amount": 100 + n}, actor="carol"
            )
        else:
            [task] = [t for t in container.automation.tasks(limit=1000) if t["run_id"] == started[n]]
            rejected = (n // 2) % 5 < 3 if region == "EU" else (n // 2) % 10 == 0
            container.automation.decide(task["id"], approve=not rejected, by="fiona", comment="checked")
        drain(container)


def open_credits(container: Container) -> dict[str, str]:
    """Five EU and five US credits, assessed and waiting for their approval; run id to region."""
    regions = {}
    for n in range(10):
        region = ("EU", "US")[n % 2]
        run_id = container.automation.start(
            "credit-check", {"account_id": f"{region.lower()}-{n % 5}", "amount": 50 + n}, actor="carol"
        )
        regions[run_id] = region
    drain(container)
    return regions


def test_a_breach_model_trained_on_the_export_ranks_the_open_runs(
    container: Container, clock: FakeClock, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    history(container, clock, tmp_path)
    export = tmp_path / "runs.csv"
    container.insights.export_log(export, None, None)
    trained = container.decisions.train_model(
        "sla-breach", export, {"target_seconds": 5 * 3600, "split": "temporal"}, name="credit-sla"
    )
    assert trained["task"] == "sla-breach"
    regions = open_credits(container)
    clock.advance(hours=2)

    report = container.insights.at_risk("credit-sla")
    assert report["model"] == {"name": "credit-sla", "version": 1, "task": "sla-breach"}
    assert (report["open_runs"], report["scored"], report["not_scored"]) == (10, 10, 0)
    ranked = [regions[item["run_id"]] for item in report["runs"]]
    assert ranked == ["EU"] * 5 + ["US"] * 5, report["runs"]  # the EU's open credits are the likeliest to breach
    first = report["runs"][0]
    assert first["breach_probability"] > 0.5 > report["runs"][-1]["breach_probability"]
    assert first["last_activity"] == "assess" and first["steps_ended"] == 1
    assert first["open_hours"] == pytest.approx(2.0, abs=0.01)
    # The runs shown say why: the features that pushed their answer most, the region among them for the EU's.
    assert len(first["why"]) in (1, 2, 3) and all({"feature", "value", "weight"} <= set(part) for part in first["why"])
    assert any(part["feature"] == "case:region" and part["value"] == "EU" for part in first["why"]), first["why"]
    assert len(container.insights.at_risk("credit-sla", limit=3)["runs"]) == 3
    # Scoring writes no decision record, and health does not call the model unused for that.
    assert not [f for f in container.insights.health(None, None)["findings"] if f["subject"] == "credit-sla"]

    with pytest.raises(NotFound, match="no model named 'credit-slaa'"):
        container.insights.at_risk("credit-slaa")
    with pytest.raises(NotFound, match="no playbook 'nope'"):
        container.insights.at_risk("credit-sla", playbook_id="nope")

    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSRAIL_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")
    run = CliRunner()
    shown = run.invoke(app, ["insights", "at-risk", "credit-sla", "--limit", "2"])
    assert shown.exit_code == 0, shown.output
    assert "Open runs most at risk by credit-sla v1 (sla-breach): 10 of 10 scored" in shown.stdout
    assert "breach probability" in shown.stdout and "credit-check v1" in shown.stdout
    assert "mostly because of" in shown.stdout
    as_json = json.loads(run.invoke(app, ["insights", "at-risk", "credit-sla", "--json"]).stdout)
    assert [regions[item["run_id"]] for item in as_json["runs"]][:5] == ["EU"] * 5


def test_other_event_log_models_and_what_cannot_score(container: Container, clock: FakeClock, tmp_path: Path) -> None:
    history(container, clock, tmp_path)
    export = tmp_path / "runs.xes.gz"
    container.insights.export_log(export, None, None)
    container.decisions.train_model("remaining-time", export, {"split": "temporal"}, name="credit-time")
    container.decisions.train_model("next-activity", export, {"split": "temporal"}, name="credit-next")
    regions = open_credits(container)
    clock.advance(hours=3)

    remaining = container.insights.at_risk("credit-time")
    assert remaining["model"]["task"] == "remaining-time" and remaining["scored"] == 10
    by_region = {regions[item["run_id"]]: item for item in remaining["runs"]}
    assert by_region["EU"]["remaining_hours"] > by_region["US"]["remaining_hours"]
    # Three hours on, the US credits (decided within the hour before) are past their predicted end: listed first.
    assert [regions[item["run_id"]] for item in remaining["runs"][:5]] == ["US"] * 5
    assert all(item["overdue"] for item in remaining["runs"][:5])

    following = container.insights.at_risk("credit-next")
    assert {item["next_activity"] for item in following["runs"]} <= {"approve", "approve (failed)"}

    container.automation.start("credit-check", {"account_id": "eu-1", "amount": 5}, actor="carol")  # never ticked
    assert container.insights.at_risk("credit-time")["not_scored"] == 1

    (tmp_path / "t.yaml").write_text(TABLE)
    container.decisions.publish_table(tmp_path / "t.yaml", "ops")
    with pytest.raises(InvalidInput, match="credit-band is a decision table; scoring open runs needs an event-log"):
        container.insights.at_risk("credit-band")
    with pytest.raises(InvalidInput, match="limit must be from 1 to 1000"):
        container.insights.at_risk("credit-time", limit=0)

    # Many inputs at once answer as one at a time (without explanations); a table answers one at a time anyway.
    prefix = {"events": [{"activity": "assess", "timestamp": "2026-01-01T00:00:00+00:00"}]}
    [many] = container.decisions.evaluate_many("credit-time", [prefix])
    one = container.decisions.evaluate("credit-time", prefix)
    assert (many.outputs, many.version, many.confidence, many.accepted) == (
        one.outputs,
        one.version,
        one.confidence,
        one.accepted,
    )
    assert many.explanation == [] and one.explanation
    bands = container.decisions.evaluate_many("credit-band", [{"amount": 5.0}, {"amount": 500.0}])
    assert [(e.outputs["band"], e.matched_rules) for e in bands] == [("small", ["small"]), ("large", ["large"])]
    with pytest.raises(InvalidInput, match="model credit-time cannot score these inputs"):
        container.decisions.evaluate_many("credit-time", [prefix, {"events": "nothing"}])


TABLE = """
name: credit-band
version: 1
hit_policy: first
inputs:
  amount: {type: double}
outputs:
  band: {type: string}
rules:
  - id: small
    when: "amount < 100.0"
    then: {band: "small"}
  - id: large
    when: "true"
    then: {band: "large"}
"""
