"""Insights on real stores (SQLite and PostgreSQL): runs made by the engine, tasks decided through the service,
accounts' segments from ingested events; the EU's credit approvals are decided differently on purpose."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from opsrail.model import InvalidInput, NotFound
from opsrail.wiring import Container
from tests.support import FakeClock, cloudevent, drain, publish

CREDIT = """
id: credit-check
version: 1
steps:
  - id: assess
    action: core.set
    with: {amount: "${ run.input.amount }"}
  - id: approve
    needs: [assess]
    approval: {roles: [finance_controller]}
    on_failure: continue
  - id: book
    needs: [approve]
    action: core.set
    with: {booked: true}
"""

SYNC = """
id: erp-sync
version: 1
steps:
  - id: push
    action: core.fail
    when: "run.input.n % 3 == 0"
    on_failure: continue
  - id: done
    needs: [push]
    action: core.set
    with: {ok: true}
"""

RUNS_PER_REGION = 30


def accounts(container: Container) -> None:
    for region in ("EU", "US"):
        for n in range(5):
            data = {
                "id": f"{region.lower()}-{n}",
                "name": f"{region} {n}",
                "segment": {"region": region, "tier": "smb"},
            }
            event = cloudevent(
                id=f"acct-{region}-{n}", source="tests/crm", type="com.opsrail.account.created", data=data
            )
            container.ingestion.ingest_single(orjson.dumps(event))


def run_credits(container: Container, clock: FakeClock, tmp_path: Path) -> None:
    """30 runs a region; EU credits are rejected 18 times in 30 and decided in 10 hours, US ones 3 in 30 in 1."""
    accounts(container)
    publish(container, tmp_path, CREDIT)
    for region in ("EU", "US"):
        for n in range(RUNS_PER_REGION):
            container.automation.start(
                "credit-check", {"account_id": f"{region.lower()}-{n % 5}", "amount": 100 + n}, actor="carol"
            )
    drain(container, 200)
    tasks = container.automation.tasks(limit=1000)
    assert len(tasks) == 2 * RUNS_PER_REGION
    by_region: dict[str, list[dict[str, Any]]] = {"EU": [], "US": []}
    for task in tasks:
        account = container.automation.show(task["run_id"])["input"]["account_id"]
        by_region["EU" if account.startswith("eu") else "US"].append(task)
    for region, hours, rejected in (("US", 1, 3), ("EU", 10, 18)):
        clock.advance(hours=hours) if region == "US" else clock.advance(hours=hours - 1)
        for i, task in enumerate(sorted(by_region[region], key=lambda t: t["id"])):
            container.automation.decide(task["id"], approve=i >= rejected, by="fiona", comment="checked the amount")
    drain(container, 200)


def test_drift_finds_the_segment_decided_differently(container: Container, clock: FakeClock, tmp_path: Path) -> None:
    run_credits(container, clock, tmp_path)
    report = container.insights.drift("region", None, None)
    findings = {(f["kind"], f["point"], f["segment"], f["measure"]): f for f in report["findings"]}
    # Two regions: one comparison each way, not two mirrored ones.
    assert not any(f["segment"] == "US" for f in report["findings"])
    share = findings["task", "credit-check/approve", "EU", "share"]
    assert share["outcome"] == "rejected" and share["against"] == "US"
    assert share["value"] == pytest.approx(0.6) and share["rest_value"] == pytest.approx(0.1)
    assert share["n"] == 30 and share["rest_n"] == 30
    assert share["p_corrected"] < 0.01
    slow = findings["task", "credit-check/approve", "EU", "median_hours"]
    assert slow["value"] == pytest.approx(10.0) and slow["rest_value"] == pytest.approx(1.0)
    # Every run succeeds (a rejected credit continues): run outcomes do not differ, so they are no finding.
    assert not any(f["kind"] == "run" and f["measure"] == "share" for f in report["findings"])
    # Other steps' ends are observed too (an approval's are its task's).
    steps = {p["point"] for p in report["points"] if p["kind"] == "step"}
    assert steps == {"credit-check/assess", "credit-check/book"}
    point = next(p for p in report["points"] if p["point"] == "credit-check/approve")
    assert point["segments"]["EU"]["outcomes"] == {"approved": 12, "rejected": 18}
    assert point["chi_square_p"] < 0.001
    with pytest.raises(InvalidInput, match="cannot compare segments by 'team'"):
        container.insights.drift("team", None, None)


def test_process_map_variants_conformance_and_health(container: Container, clock: FakeClock, tmp_path: Path) -> None:
    run_credits(container, clock, tmp_path)
    process = container.insights.process("credit-check", None, None)
    top = process["variants"]["top"]
    assert process["variants"]["runs"] == 60 and process["variants"]["variants"] == 2
    assert top[0]["activities"] == ["assess", "approve", "book"] and top[0]["runs"] == 39
    assert top[1]["activities"] == ["assess", "approve (failed)", "book"] and top[1]["runs"] == 21
    edges = {(e["from"], e["to"]): e["count"] for e in process["map"]["edges"]}
    assert edges[("▶ start", "assess")] == 60 and edges[("assess", "approve (failed)")] == 21
    assert edges[("book", "■ end")] == 60
    nodes = {n["activity"]: n for n in process["map"]["nodes"]}
    assert nodes["approve"]["count"] == 39 and nodes["approve (failed)"]["median_minutes"] == pytest.approx(600.0)

    [version] = container.insights.conformance("credit-check", None, None)["versions"]
    assert version["runs"] == 60 and version["fitness"] == 1.0 and version["deviations"] == {}
    assert version["main_variant"] == ["assess", "approve", "book"] and version["main_variant_share"] == 0.65

    # Rejected approvals are people's answers, not a failing step; a step that fails whenever it runs is (it runs
    # in a third of the runs; skipped steps are not counted).
    publish(container, tmp_path, SYNC, "sync.yaml")
    for n in range(30):
        container.automation.start("erp-sync", {"n": n}, actor="carol")
    drain(container, 200)
    health = container.insights.health(None, None)
    failing = [f for f in health["findings"] if f["kind"] == "step_failing"]
    assert [f["subject"] for f in failing] == ["erp-sync@1 step push"]
    assert failing[0]["value"] == 1.0 and failing[0]["n"] == 10 and failing[0]["severity"] == "warning"

    with pytest.raises(NotFound, match="no playbook 'credit-chek'"):
        container.insights.process("credit-chek", None, None)


def test_an_item_s_own_segment_comes_before_its_account_s(
    container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    accounts(container)
    publish(container, tmp_path, CREDIT)
    container.automation.start("credit-check", {"account_id": "eu-0", "amount": 5}, actor="carol")
    container.automation.start(
        "credit-check", {"account_id": "eu-1", "amount": 6, "segment": {"region": "APAC"}}, actor="carol"
    )
    container.automation.start("credit-check", {"account_id": "nobody", "amount": 7}, actor="carol")
    drain(container)
    for task in container.automation.tasks():
        container.automation.decide(task["id"], approve=True, by="fiona")
    drain(container)
    tasks = sorted(o.segment for o in container.insights.observations("region", None, None) if o.kind == "task")
    assert tasks == ["APAC", "EU", "unknown"]


def test_health_finds_a_step_that_misses_its_sla(container: Container, clock: FakeClock, tmp_path: Path) -> None:
    publish(
        container,
        tmp_path,
        "id: onboard\nversion: 1\nsteps:\n  - id: kickoff\n    wait: {duration: PT3H}\n    sla: {target: PT2H}\n",
        "onboard.yaml",
    )
    for n in range(10):
        container.automation.start("onboard", {"n": n}, actor="carol")
    drain(container)
    clock.advance(hours=4)  # every wait outlasts its two-hour target
    drain(container)
    [finding] = [f for f in container.insights.health(None, None)["findings"] if f["kind"] == "sla_breached"]
    assert finding["subject"] == "onboard@1 step kickoff" and finding["detail"] == "10 of 10 SLA clocks breached"


RULED = """
id: ruled-credit
version: 1
steps:
  - id: approve
    approval:
      roles: [finance_controller]
      rules:
        - when: "run.input.amount > 1000"
          roles: [finance_controller]
        - when: "run.input.amount <= 1000"
          roles: [finance_controller]
    on_failure: continue
"""


def test_tasks_opened_by_different_approval_rules_are_compared_within_their_rule(
    container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    accounts(container)
    publish(container, tmp_path, RULED, "ruled.yaml")
    for n in range(40):
        region = "eu" if n % 2 else "us"
        container.automation.start(
            "ruled-credit", {"account_id": f"{region}-{n % 5}", "amount": 5000 if n % 4 < 2 else 50}, actor="carol"
        )
    drain(container)
    for i, task in enumerate(container.automation.tasks(limit=100)):
        container.automation.decide(task["id"], approve=i % 3 != 0, by="fiona", comment="checked")
    drain(container)
    strata = {o.stratum for o in container.insights.observations("region", None, None) if o.kind == "task"}
    assert strata == {"rule 0", "rule 1"}
    [comparison] = [
        c
        for c in container.insights.drift("region", None, None)["comparisons"]
        if c["point"] == "ruled-credit/approve" and c["measure"] == "share"
    ]
    assert comparison["test"] == "cmh" and comparison["strata"] == 2


BANDS = """
name: credit-band
version: 1
hit_policy: first
inputs:
  amount: {type: double}
  account_id: {type: string}
outputs:
  band: {type: string}
rules:
  - id: large
    when: "amount >= 1000.0"
    then: {band: "large"}
  - id: small
    when: "true"
    then: {band: "small"}
"""
BAND_POLICY = """
decisions:
  credit-band:
    tier: approval
    approval:
      - when: "output.band == 'small'"
        tier: autonomous
      - roles: [finance_controller]
"""


def test_decisions_are_compared_within_the_rule_they_matched(container: Container, tmp_path: Path) -> None:
    """The EU's credits are larger, so they match the rule that needs an approver four times as often; within each
    rule both regions are routed alike: no finding. The plain shares, still reported, differ by 60 points."""
    accounts(container)
    (tmp_path / "bands.yaml").write_text(BANDS)
    container.decisions.publish_table(tmp_path / "bands.yaml", "ops")
    (tmp_path / "policy.yaml").write_text(BAND_POLICY)
    container.decisions.apply_policies(tmp_path / "policy.yaml", "ops")
    for region, large in (("EU", 24), ("US", 6)):
        for n in range(30):
            amount = 5000.0 if n < large else 50.0
            record = container.decisions.evaluate_and_record(
                "credit-band", {"amount": amount, "account_id": f"{region.lower()}-{n % 5}"}
            )
            assert record["route"] == ("approval" if amount >= 1000 else "acted")
    report = container.insights.drift("region", None, None)
    assert not [f for f in report["findings"] if f["point"] == "credit-band"], report["findings"]
    [point] = [p for p in report["points"] if p["kind"] == "route" and p["point"] == "credit-band"]
    assert point["segments"]["EU"]["outcomes"] == {"approval": 24, "acted": 6}
    assert point["segments"]["US"]["outcomes"] == {"approval": 6, "acted": 24}
