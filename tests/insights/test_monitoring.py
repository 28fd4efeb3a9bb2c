"""Model monitoring: routes, agreement and calibration in production, on hand-made records and on a real store
where a trained ticket classifier's answers are reviewed by people through the engine."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opsrail.cli import app
from opsrail.insights import HealthInputs, MonitoringSettings, health, monitor, wilson
from opsrail.model import InvalidInput, NotFound
from opsrail.wiring import Container
from tests.storage.test_decisions import TRIAGE
from tests.support import drain, ticket_sample

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def record(
    confidence: float, status: str, *, route: str = "review", hours: int = 0, segment: str = "EU", version: int = 1
) -> dict[str, Any]:
    return {
        "decision": "ticket-topic",
        "version": version,
        "created_at": T0 + timedelta(hours=hours),
        "confidence": confidence,
        "route": route,
        "status": status,
        "segment": segment,
    }


def test_the_wilson_interval_matches_the_textbook() -> None:
    low, high = wilson(8, 10) or (0.0, 0.0)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson(0, 0) is None
    low, high = wilson(0, 20) or (1.0, 1.0)
    assert low == 0.0 and round(high, 4) == 0.1611


def test_a_version_s_routes_settlements_calibration_weeks_and_segments() -> None:
    records = [
        record(0.95, "accepted", hours=0),
        record(0.92, "overridden", hours=1),
        record(0.55, "accepted", hours=2, segment="US"),
        record(0.58, "rejected", hours=200, segment="US"),  # the next week
        record(0.99, "decided", route="acted", hours=3),
        record(0.97, "overridden", route="acted", hours=4),  # acted on, then overridden by someone
        record(0.40, "pending", hours=5),
        record(0.70, "accepted", version=2),
    ]
    report = monitor(records)
    assert [(m["decision"], m["version"]) for m in report["models"]] == [("ticket-topic", 2), ("ticket-topic", 1)]
    model = report["models"][1]
    assert model["records"] == 7
    assert model["routes"] == {"review": 5, "acted": 2}
    assert model["acted_share"] == pytest.approx(2 / 7, abs=1e-4)
    assert model["settled"] == {"accepted": 2, "overridden": 2, "rejected": 1}
    assert model["unchecked"] == 1 and model["agreement"] == 0.4
    groups = {(g["from"], g["to"]): g for g in model["calibration"]}
    assert set(groups) == {(0.5, 0.6), (0.95, 1.0), (0.9, 0.95)}
    assert groups[0.95, 1.0]["n"] == 2 and groups[0.95, 1.0]["agreement"] == 0.5
    assert groups[0.95, 1.0]["mean_confidence"] == pytest.approx(0.96)
    assert groups[0.5, 0.6]["gap"] == pytest.approx(0.5 - 0.565)
    # Mean absolute gap between confidence and agreement, weighted by the settled records of each group.
    expected = (2 * abs(0.5 - 0.565) + 1 * abs(0.0 - 0.92) + 2 * abs(0.5 - 0.96)) / 5
    assert model["calibration_error"] == pytest.approx(expected, abs=1e-4)
    assert [w["week"] for w in model["weeks"]] == ["2026-W10", "2026-W11"]
    assert model["weeks"][1]["records"] == 1 and model["weeks"][1]["agreement"] == 0.0
    assert model["segments"]["US"]["agreement"] == 0.5 and model["segments"]["EU"]["records"] == 5
    assert model["confidence"]["median"] == 0.92
    assert report["findings"] == []  # no group has the 20 settled records a judgement needs


def test_an_overconfident_model_is_a_finding_and_a_calibrated_one_never_is() -> None:
    rng = random.Random(7)
    over = [record(0.9 + 0.049 * rng.random(), "accepted" if i % 5 < 3 else "overridden") for i in range(60)]
    over += [record(0.97, "accepted") for _ in range(30)]  # right as often as it says: no finding there
    report = monitor(over)
    [finding] = report["findings"]
    assert finding["kind"] == "overconfident" and finding["confidence"] == [0.9, 0.95]
    assert (finding["n"], finding["agreement"]) == (60, 0.6)
    assert finding["agreement"] < finding["mean_confidence"] - 0.1 and finding["p_corrected"] < 0.01
    assert "people accepted" in finding["detail"] and "threshold" in finding["hint"]
    # Health lists it with the other warnings about models.
    [warning] = health(HealthInputs(overconfident=report["findings"]))["findings"]
    assert (warning["kind"], warning["subject"], warning["severity"]) == (
        "model_overconfident",
        "ticket-topic v1",
        "warning",
    )
    assert warning["n"] == 60 and warning["value"] == 0.6 and warning["detail"] == finding["detail"]
    # A small gap is no finding however many records it rests on; and a calibrated model, over many seeds, none.
    assert monitor(over, MonitoringSettings(min_gap=0.5))["findings"] == []
    for seed in range(20):
        rng = random.Random(seed)
        calibrated = []
        for _ in range(400):
            confidence = rng.uniform(0.3, 1.0)
            calibrated.append(record(confidence, "accepted" if rng.random() < confidence else "overridden"))
        assert monitor(calibrated)["findings"] == [], seed


POLICY = "decisions:\n  ticket-topic: {tier: autonomous, min_confidence: 0.999, review: {roles: [operator]}}\n"


def triage(container: Container, tmp_path: Path, unseen: int) -> list[str]:
    """The ticket classifier trained on the first 1,200 tickets, every answer under 0.999 sent to an operator's
    review, the triage playbook published; the texts of the next ``unseen`` tickets."""
    container.decisions.train_model(
        "text-classifier", ticket_sample(tmp_path), {"text": "Document", "label": "Topic_group"}, name="ticket-topic"
    )
    (tmp_path / "policy.yaml").write_text(POLICY)
    container.decisions.apply_policies(tmp_path / "policy.yaml", "ops")
    (tmp_path / "triage.yaml").write_text(TRIAGE)
    container.automation.publish(tmp_path / "triage.yaml", "ops")
    (tmp_path / "more").mkdir()
    with ticket_sample(tmp_path / "more", rows=1200 + unseen).open(encoding="utf-8") as handle:
        return [row["Document"] for row in csv.DictReader(handle)][1200:]


def test_a_trained_model_reviewed_through_the_engine(
    container: Container, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    unseen = triage(container, tmp_path, 40)
    for n, text in enumerate(unseen):
        container.automation.start("ticket-triage", {"text": text, "segment": {"region": ("EU", "US")[n % 2]}})
    drain(container, 200)
    tasks = container.automation.tasks(limit=100)
    assert len(tasks) >= 20  # the rest the model was sure enough of to act on
    regions: Counter[str] = Counter()
    for task in tasks:
        region = container.automation.show(task["run_id"])["input"]["segment"]["region"]
        regions[region] += 1
        if region == "EU":  # the EU's reviewers give their own answer every time
            answer = "Storage" if task["context"]["recommendation"]["label"] != "Storage" else "Hardware"
            container.automation.decide(task["id"], approve=False, by="oscar", comment="no", value={"label": answer})
        else:
            container.automation.decide(task["id"], approve=True, by="olive", comment="right")
    drain(container, 200)

    report = container.insights.models(None, None, settings=MonitoringSettings(min_bin=5))
    [model] = report["models"]
    assert (model["decision"], model["version"], model["records"]) == ("ticket-topic", 1, 40)
    assert model["routes"] == {"review": len(tasks), **({"acted": 40 - len(tasks)} if len(tasks) < 40 else {})}
    assert model["settled"] == {"accepted": regions["US"], "overridden": regions["EU"]}
    assert model["unchecked"] == 40 - len(tasks)
    assert model["agreement"] == pytest.approx(regions["US"] / len(tasks), abs=1e-4)
    assert model["segments"]["EU"]["agreement"] == 0.0 and model["segments"]["US"]["agreement"] == 1.0
    assert model["segments"]["EU"]["records"] == model["segments"]["US"]["records"] == 20
    assert sum(group["n"] for group in model["calibration"]) == len(tasks)
    assert all(0.0 < group["mean_confidence"] < 0.999 for group in model["calibration"])
    assert report["window"]["settings"]["min_bin"] == 5
    with pytest.raises(NotFound, match="no decision table or model named 'ticket-topik'"):
        container.insights.models(None, None, decision="ticket-topik")
    with pytest.raises(InvalidInput, match="cannot split by 'team'"):
        container.insights.models(None, None, by="team")

    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSRAIL_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")
    run = CliRunner()
    shown = run.invoke(app, ["insights", "models", "--min-bin", "5"])
    assert shown.exit_code == 0, shown.output
    assert f"{regions['US'] / len(tasks):.0%} of {len(tasks)} (" in shown.stdout
    assert "Calibration of ticket-topic v1" in shown.stdout and "ticket-topic v1 by region" in shown.stdout
    assert "people accepted" in shown.stdout
    as_json = json.loads(run.invoke(app, ["insights", "models", "ticket-topic", "--by", "tier", "--json"]).stdout)
    assert list(as_json["models"][0]["segments"]) == ["unknown"]
    missing = run.invoke(app, ["insights", "models", "nothing-here"])
    assert missing.exit_code == 4 and "no decision table or model named 'nothing-here'" in missing.stderr


def test_health_sees_people_overriding_a_model_more_and_more(container: Container, tmp_path: Path) -> None:
    """The newer half of the model's reviewed answers is overridden, the older half was accepted: the store, the
    service's ordering of records and the test together give ``overrides_rising``."""
    unseen = triage(container, tmp_path, 80)
    for text in unseen:
        container.automation.start("ticket-triage", {"text": text})
    drain(container, 300)
    tasks = sorted(container.automation.tasks(limit=200), key=lambda task: task["id"])  # in the records' order
    assert len(tasks) >= 44
    half = len(tasks) // 2
    for i, task in enumerate(tasks):
        if i < half:
            container.automation.decide(task["id"], approve=True, by="olive", comment="right")
        else:
            label = "Storage" if task["context"]["recommendation"]["label"] != "Storage" else "Hardware"
            container.automation.decide(task["id"], approve=False, by="olive", comment="no", value={"label": label})
    drain(container, 300)
    found = {f["kind"]: f for f in container.insights.health(None, None)["findings"] if f["subject"] == "ticket-topic"}
    assert set(found) >= {"overrides_rising", "decision_overridden"}
    assert found["overrides_rising"]["severity"] == "warning"
    # The test is one-sided: had the records come back newest first, the overridden half would look older, and
    # nothing would be rising.
    report = container.insights.models(None, None)
    [weeks] = [m["weeks"] for m in report["models"]]
    assert sum(w["settled"].get("overridden", 0) for w in weeks) == len(tasks) - half
