"""``opsrail insights`` and ``/v1/insights`` on a store the engine filled: the EU's credits are rejected more often
and decided more slowly (``tests.insights.test_insights_store.run_credits``)."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsrail.cli import app
from opsrail.settings import Settings
from opsrail.wiring import build
from tests.api.conftest import Server, start_server
from tests.insights.test_insights_store import run_credits
from tests.support import FakeClock, SequentialIds, add_staff


def filled(home: Path) -> None:
    clock = FakeClock()
    container = build(Settings(home=home), migrate=True, clock=clock, ids=SequentialIds())
    add_staff(container)
    run_credits(container, clock, home)
    container.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("insights")
    filled(home)
    yield from start_server(home, None)


def test_the_cli_reports_drift_variants_conformance_and_health(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    filled(tmp_path)
    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    run = CliRunner()
    drift = run.invoke(app, ["insights", "drift", "--by", "region"])
    assert drift.exit_code == 0, drift.output
    assert "credit-check/approve" in drift.stdout and "rejected 60% vs 10%" in drift.stdout
    assert "median 10 h vs 1 h" in drift.stdout
    report = json.loads(run.invoke(app, ["insights", "drift", "--json", "--min-difference", "0.6"]).stdout)
    assert [f["measure"] for f in report["findings"]] == ["median_hours"]  # a 50-point gap is under 0.6
    one_tier = run.invoke(app, ["insights", "drift", "--by", "tier"])
    assert one_tier.exit_code == 0 and "every observation is in one tier (smb)" in one_tier.stdout

    process = run.invoke(app, ["insights", "process", "credit-check"])
    assert process.exit_code == 0 and "assess → approve (failed) → book" in process.stdout
    assert (
        json.loads(run.invoke(app, ["insights", "process", "credit-check", "--json"]).stdout)["variants"]["runs"] == 60
    )
    by_path = json.loads(
        run.invoke(app, ["insights", "process", "credit-check", "--order", "playbook", "--json"]).stdout
    )
    assert by_path["window"]["order"] == "playbook" and by_path["variants"]["variants"] == 2
    conformance = run.invoke(app, ["insights", "conformance"])
    assert conformance.exit_code == 0 and "100.0%" in conformance.stdout
    health = json.loads(run.invoke(app, ["insights", "health", "--json"]).stdout)
    assert health["findings"] == [] and health["counts"]["steps"] == 3

    missing = run.invoke(app, ["insights", "process", "credit-chek"])
    assert missing.exit_code == 4 and "no playbook 'credit-chek'" in missing.stderr
    empty = run.invoke(app, ["insights", "drift", "--since", "2026-02-01", "--until", "2026-01-01"])
    assert empty.exit_code == 2 and "the window is empty" in empty.stderr
    nothing = run.invoke(app, ["insights", "process", "credit-check", "--since", "2026-01-06"])
    assert nothing.exit_code == 0 and "none. no run of it started in the window" in nothing.stdout


def test_the_api_answers_the_same_and_refuses_bad_input(server: Server) -> None:
    with server.client() as client:
        drift = client.get("/v1/insights/drift", params={"by": "region"})
        assert drift.status_code == 200, drift.text
        [share] = [f for f in drift.json()["findings"] if f["measure"] == "share"]
        assert (share["point"], share["segment"], share["against"], share["value"]) == (
            "credit-check/approve",
            "EU",
            "US",
            0.6,
        )
        process = client.get("/v1/insights/process/credit-check", params={"top": 1})
        assert process.status_code == 200 and process.json()["variants"]["other_runs"] == 21
        assert (
            client.get("/v1/insights/conformance", params={"playbook": "credit-check"}).json()["versions"][0]["fitness"]
            == 1.0
        )
        assert client.get("/v1/insights/health").json()["findings"] == []
        assert client.get("/v1/insights/process/credit-check", params={"order": "sideways"}).status_code in (400, 422)
        missing = client.get("/v1/insights/process/nope")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        bad = client.get("/v1/insights/drift", params={"by": "team", "alpha": 2})
        assert bad.status_code == 422 or bad.status_code == 400
        assert bad.headers["content-type"] == "application/problem+json"
        window = client.get("/v1/insights/health", params={"since": "tomorrow"})
        assert window.status_code == 400 and "not an ISO 8601 date" in window.json()["detail"]
    # Insights read runs: an auditor may, an unauthenticated caller may not.
    with server.client(server.reader_token) as reader:
        assert reader.get("/v1/insights/health").status_code == 200
    with server.client("opsr_not-a-token") as stranger:
        assert stranger.get("/v1/insights/health").status_code == 401


def test_the_cli_exports_the_runs_and_a_model_trains_on_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    filled(tmp_path)
    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    run = CliRunner()
    path = tmp_path / "runs.csv.gz"
    done = run.invoke(app, ["insights", "export", str(path)])
    assert done.exit_code == 0, done.output
    assert f"wrote 60 run(s) and 180 event(s) to {path} (csv, gzip;" in done.stdout
    assert f"opsrail models train next-activity --log {path}" in done.stdout
    again = run.invoke(app, ["insights", "export", str(path)])
    assert again.exit_code == 2 and f"{path} exists" in again.stderr and "--force" in again.stderr
    written = json.loads(run.invoke(app, ["insights", "export", str(path), "--force", "--json"]).stdout)
    assert (written["runs"], written["events"], written["format"], written["gzip"]) == (60, 180, "csv", True)
    helped = run.invoke(app, ["insights", "export", "--help"])
    assert "[default: from the file name]" in helped.stdout  # help texts are not read as markup
    unnamed = run.invoke(app, ["insights", "export", str(tmp_path / "runs.log")])
    assert unnamed.exit_code == 2 and "cannot tell the format" in unnamed.stderr
    as_xes = json.loads(
        run.invoke(app, ["insights", "export", str(tmp_path / "runs.log"), "--format", "xes", "--json"]).stdout
    )
    assert as_xes["format"] == "xes" and (tmp_path / "runs.log").read_text().startswith("<?xml")
    # The exported log trains a model with no column options (the trainer's defaults are the export's columns).
    trained = run.invoke(app, ["models", "train", "remaining-time", "--log", str(path), "--json"])
    assert trained.exit_code == 0, trained.output
    model = json.loads(trained.stdout)
    assert model["columns"] == {"case": "case:concept:name", "activity": "concept:name", "timestamp": "time:timestamp"}
    # How a run ended is never a feature: a prefix of an open run cannot know it.
    assert not any("outcome:" in name for name in model["params"]["attributes"])
    # An event without a time in a file scored later is left out and named, not a failure.
    with gzip.open(path, "rt", newline="") as handle:
        rows = list(csv.reader(handle))
    rows[1][rows[0].index("time:timestamp")] = ""
    damaged = tmp_path / "damaged.csv"
    with damaged.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    scored = run.invoke(app, ["models", "evaluate", "remaining-time", "--data", str(damaged)])
    assert scored.exit_code == 0, scored.output
    assert "events_left_out: 1" in scored.stdout
    assert "warning: 1 event without a value in 'time:timestamp' left out (the first: row 2)" in scored.stdout


def test_the_api_serves_the_event_log_file(server: Server, tmp_path: Path) -> None:
    from opsrail.ml import read_event_log

    with server.client() as client:
        answer = client.get("/v1/insights/log", params={"format": "xes", "gzip": "true"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/gzip"
        assert 'filename="runs.xes.gz"' in answer.headers["content-disposition"]
        assert (answer.headers["x-opsrail-runs"], answer.headers["x-opsrail-events"]) == ("60", "180")
        (tmp_path / "runs.xes.gz").write_bytes(answer.content)
        assert len(read_event_log(tmp_path / "runs.xes.gz").cases) == 60
        parquet = client.get("/v1/insights/log", params={"format": "parquet", "playbook": "credit-check"})
        assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
        assert parquet.content[:4] == b"PAR1"
        csv = client.get("/v1/insights/log", params={"since": "2026-01-06"})
        assert csv.headers["content-type"].startswith("text/csv") and csv.text.count("\n") == 1
        missing = client.get("/v1/insights/log", params={"playbook": "nope"})
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        assert client.get("/v1/insights/log", params={"format": "json"}).status_code in (400, 422)
    with server.client("opsr_not-a-token") as stranger:
        assert stranger.get("/v1/insights/log").status_code == 401


def test_the_api_reports_models_in_production(server: Server) -> None:
    with server.client() as client:
        empty = client.get("/v1/insights/models", params={"by": "tier", "min_bin": 5})
        assert empty.status_code == 200, empty.text
        assert empty.json()["models"] == [] and empty.json()["window"]["settings"]["min_bin"] == 5
        missing = client.get("/v1/insights/models", params={"decision": "nope"})
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        bad = client.get("/v1/insights/models", params={"by": "team"})
        assert bad.status_code in (400, 422) and bad.headers["content-type"] == "application/problem+json"
