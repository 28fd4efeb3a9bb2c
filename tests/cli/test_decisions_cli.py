"""`opsrail decisions …` and `opsrail models …` in-process against a real store."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import opsrail.decisions
from opsrail.cli import app

REFERENCE = Path(opsrail.decisions.__file__).parent / "reference"


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSRAIL_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    return runner


def test_validate_test_publish_list_show_evaluate_and_records(run: CliRunner, tmp_path: Path) -> None:
    table = str(REFERENCE / "incident-router.yaml")
    valid = run.invoke(app, ["decisions", "validate", table, "--json"])
    assert valid.exit_code == 0, valid.output
    assert json.loads(valid.stdout)["name"] == "incident-router"
    tested = run.invoke(app, ["decisions", "test", table, "--json"])
    assert tested.exit_code == 0 and json.loads(tested.stdout)["failed"] == 0

    broken = tmp_path / "broken.yaml"
    broken.write_text(
        (REFERENCE / "incident-router.yaml").read_text().replace("credit_exposure: 6000.0", "credit_exposure: 1.0")
    )
    failing = run.invoke(app, ["decisions", "test", str(broken)])
    assert failing.exit_code == 1 and "FAIL" in failing.stdout

    assert run.invoke(app, ["decisions", "publish", table, "--as", "ops"]).exit_code == 0
    listed = json.loads(run.invoke(app, ["decisions", "list", "--json"]).stdout)
    assert listed[0]["name"] == "incident-router" and listed[0]["latest"] == 2
    shown = run.invoke(app, ["decisions", "show", "incident-router"])
    assert shown.exit_code == 0 and "sev1-premium" in shown.stdout
    assert "hit policy first, 6 rules, 6 test cases" in shown.stdout
    assert "Inputs" in shown.stdout and "required" in shown.stdout and "Outputs" in shown.stdout
    assert "page_oncall = true" in shown.stdout  # each output of a rule on a line of its own
    described = json.loads(run.invoke(app, ["decisions", "show", "incident-router", "--json"]).stdout)
    assert described["inputs"]["severity"] == {
        "type": "int",
        "required": True,
        "default": None,
        "description": "1 (critical) to 4 (low)",
    }
    assert described["inputs"]["arr"]["required"] is False and described["outputs"]["page_oncall"]["default"] is False

    evaluated = run.invoke(
        app, ["decisions", "evaluate", "incident-router", "--input", '{"severity": 3, "topic": "Access"}', "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    record = json.loads(evaluated.stdout)
    assert record["outputs"]["team"] == "identity" and record["matched_rules"] == ["access"]
    bad_json = run.invoke(app, ["decisions", "evaluate", "incident-router", "--input", "{nope"])
    assert bad_json.exit_code == 2 and "not valid JSON" in bad_json.stderr

    override = ["decisions", "override", record["id"], "--value", '{"team": "sre"}', "--reason", "outage", "--as"]
    refused = run.invoke(app, [*override, "dana"])  # not in the directory: a local admin, who may not override
    assert refused.exit_code == 3 and "may not decision_record.override" in refused.stderr
    assert run.invoke(app, ["users", "create", "dana", "--role", "operator"]).exit_code == 0
    overridden = run.invoke(app, [*override, "dana"])
    assert overridden.exit_code == 0, overridden.output
    records = json.loads(run.invoke(app, ["decisions", "records", "list", "--json"]).stdout)
    assert [(r["id"], r["status"], r["reviewed_by"]) for r in records] == [(record["id"], "overridden", "dana")]
    listed = run.invoke(app, ["decisions", "records", "list"]).stdout
    assert f"incident-router@{record['version']}" in listed and "overridden by dana" in listed
    shown_record = run.invoke(app, ["decisions", "records", "show", record["id"]])
    assert shown_record.exit_code == 0 and "outage" in shown_record.stdout
    assert run.invoke(app, ["decisions", "records", "show", "dec_missing"]).exit_code == 4
    bogus = run.invoke(app, ["decisions", "records", "list", "--status", "done"])
    assert bogus.exit_code == 2 and "not one of decided, pending" in bogus.stderr

    policy = tmp_path / "policy.yaml"
    policy.write_text("decisions:\n  cli-example: {tier: advisory}\n")
    assert run.invoke(app, ["decisions", "policies", "apply", str(policy)]).exit_code == 0
    policies = json.loads(run.invoke(app, ["decisions", "policies", "list", "--json"]).stdout)
    assert policies["cli-example"]["tier"] == "advisory"
    policy.write_text("decisions:\n  cli-example: {tier: sometimes}\n")
    refused = run.invoke(app, ["decisions", "policies", "apply", str(policy)])
    assert refused.exit_code == 2 and "tier" in refused.stderr
    policy.write_text("decisions:\n  cli-example: {tier: autonomous, review: {roles: [reviewers]}}\n")
    unknown_role = run.invoke(app, ["decisions", "policies", "apply", str(policy)])
    assert unknown_role.exit_code == 2 and "$.decisions.cli-example.review.roles.0" in unknown_role.stderr
    assert "unknown role 'reviewers'; the roles are admin" in unknown_role.stderr


def test_models_train_needs_its_columns_and_says_which_exist(run: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "tickets.csv"
    data.write_text("body,queue\nprinter jammed,Hardware\nreset my password,Access\n")
    missing = run.invoke(app, ["models", "train", "text-classifier", "--data", str(data), "--text", "body"])
    assert missing.exit_code == 2 and "--label" in missing.stderr
    wrong = run.invoke(
        app, ["models", "train", "text-classifier", "--data", str(data), "--text", "Document", "--label", "queue"]
    )
    assert wrong.exit_code == 2 and "body" in wrong.stderr
    assert wrong.stderr.count("tickets.csv") == 1  # the file is named once
    nothing = run.invoke(app, ["models", "evaluate", "nothing", "--data", str(data)])
    assert nothing.exit_code == 4
    unknown = run.invoke(app, ["models", "train", "forecast", "--data", str(data)])
    assert unknown.exit_code == 2 and "text-classifier" in unknown.stderr
    log = ["models", "train", "sla-breach", "--log", str(data)]
    split = run.invoke(app, [*log, "--split", "random"])
    assert split.exit_code == 2 and "--split 'random' is not one of tax2017" in split.stderr
    negative = run.invoke(app, [*log, "--target", "P-1D"])
    assert negative.exit_code == 2 and "is not an ISO 8601 duration" in negative.stderr


def test_models_train_and_evaluate_a_text_classifier_with_json(run: CliRunner, tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "it_tickets" / "tickets_train.csv.gz"
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        rows = [row for _, row in zip(range(900), csv.DictReader(handle), strict=False)]
    data = tmp_path / "tickets.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["body", "queue"])  # other column names than the shared file's
        writer.writerows((row["Document"], row["Topic_group"]) for row in rows)
    trained = run.invoke(
        app,
        ["models", "train", "text-classifier", "--data", str(data), "--text", "body", "--label", "queue", "--json"],
    )
    assert trained.exit_code == 0, trained.output
    info = json.loads(trained.stdout)
    assert info["name"] == "text-classifier" and info["version"] == 1
    assert info["columns"] == {"text": "body", "label": "queue"} and len(info["data_sha256"]) == 64
    assert 0.3 < info["metrics"]["accuracy"] <= 1.0 and info["thresholds"]
    evaluated = run.invoke(app, ["models", "evaluate", "text-classifier", "--data", str(data), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    figures = json.loads(evaluated.stdout)
    assert {"accuracy", "macro_f1", "n", "coverage_at_precision_0.95", "brier"} <= set(figures)
    assert figures["n"] == 900
    listed = json.loads(run.invoke(app, ["models", "list", "--json"]).stdout)
    assert [(m["name"], m["latest"]) for m in listed] == [("text-classifier", 1)]

    train = ["models", "train", "text-classifier", "--data", str(data), "--text", "body", "--label", "queue"]
    assert run.invoke(app, train).exit_code == 0
    dry = run.invoke(app, ["models", "prune", "--keep", "1", "--dry-run"])
    assert dry.exit_code == 0 and "would prune text-classifier version 1" in dry.stdout
    pruned = json.loads(run.invoke(app, ["models", "prune", "--keep", "1", "--as", "olive", "--json"]).stdout)
    assert [(p["name"], p["version"]) for p in pruned["pruned"]] == [("text-classifier", 1)] and pruned["bytes"] > 0
    assert "pruned" in run.invoke(app, ["models", "show", "text-classifier", "--version", "1"]).stdout
    gone = run.invoke(app, ["models", "evaluate", "text-classifier", "--version", "1", "--data", str(data)])
    assert gone.exit_code == 5 and "was pruned" in gone.stderr
    assert run.invoke(app, ["models", "prune", "--keep", "0"]).exit_code == 2
    history = json.loads(run.invoke(app, ["models", "versions", "text-classifier", "--json"]).stdout)
    assert [(v["version"], bool(v["pruned_at"])) for v in history] == [(2, False), (1, True)]
    assert history[0]["figures"]["n"] == 900 and history[1]["bytes"] == 0
    assert "Versions of text-classifier" in run.invoke(app, ["models", "versions", "text-classifier"]).stdout
    listed = json.loads(run.invoke(app, ["models", "list", "--json"]).stdout)
    assert [(m["name"], m["latest"], m["versions"]) for m in listed] == [("text-classifier", 2, 2)]


def test_a_semicolon_windows_export_with_a_one_off_label_trains_and_finds_similar_cases(
    run: CliRunner, tmp_path: Path
) -> None:
    source = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "it_tickets" / "tickets_train.csv.gz"
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        rows = [
            [row["Document"], row["Topic_group"]] for _, row in zip(range(900), csv.DictReader(handle), strict=False)
        ]
    rows[0] = ["caf\u00e9 machine r\u00e9paration; urgent", "Facilities"]  # one example of its class
    data = tmp_path / "export.csv"
    with data.open("w", newline="", encoding="cp1252") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["Description", "Queue"])
        writer.writerows(rows)
    trained = run.invoke(
        app, ["models", "train", "text-classifier", "--data", str(data), "--text", "Description", "--label", "Queue"]
    )
    assert trained.exit_code == 0, trained.output
    assert "warning: 1 class(es) have fewer than 3 examples (Facilities)" in trained.stdout
    shown = json.loads(run.invoke(app, ["models", "show", "text-classifier", "--json"]).stdout)
    assert shown["params"]["file"] == {"encoding": "cp1252", "delimiter": ";", "rows_without_label": 0}
    decided = run.invoke(
        app, ["decisions", "evaluate", "text-classifier", "--input", '{"text": "caf\u00e9 machine"}', "--json"]
    )
    assert decided.exit_code == 0, decided.output
    similar = json.loads(decided.stdout)["similar"]
    assert similar and similar[0]["source"] == "export.csv#line-2"  # the accented text read back intact


def test_a_title_and_body_export_trains_on_both_columns_and_answers_from_them(run: CliRunner, tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "it_tickets" / "tickets_train.csv.gz"
    with gzip.open(source, "rt", encoding="utf-8") as handle:
        tickets = [row for _, row in zip(range(600), csv.DictReader(handle), strict=False)]
    data = tmp_path / "jira.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Summary", "Description", "Queue"])
        for row in tickets:  # the first four words as the title, the rest as the body
            words = row["Document"].split()
            writer.writerow([" ".join(words[:4]), " ".join(words[4:]), row["Topic_group"]])
    options = ["--data", str(data), "--text", "Summary,Description", "--label", "Queue", "--name", "queue", "--json"]
    trained = run.invoke(app, ["models", "train", "text-classifier", *options])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["columns"] == {"text": "Summary,Description", "label": "Queue"}
    first = tickets[0]["Document"].split()
    ticket = {"Summary": " ".join(first[:4]), "Description": " ".join(first[4:]), "priority": "high"}
    decided = run.invoke(app, ["decisions", "evaluate", "queue", "--input", json.dumps(ticket), "--json"])
    assert decided.exit_code == 0, decided.output
    answer = json.loads(decided.stdout)
    assert answer["similar"][0]["source"] == "jira.csv#line-2"  # the same ticket, found from both columns
    missing = run.invoke(app, ["decisions", "evaluate", "queue", "--input", '{"title": "printer"}'])
    assert missing.exit_code == 2 and '"Summary": str, "Description": str' in missing.stderr


def test_knowledge_search_cites_runbooks(run: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = run.invoke(app, ["decisions", "knowledge", "SAML assertion failed during SSO setup", "-k", "2", "--json"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)["items"]
    assert len(hits) == 2 and hits[0]["kind"] == "runbook" and "sso" in hits[0]["source"]
    assert hits[0]["score"] >= hits[1]["score"] > 0
    assert "SSO onboarding" in run.invoke(app, ["decisions", "knowledge", "SAML assertion"]).stdout

    own = tmp_path / "knowledge"
    own.mkdir()
    (own / "refunds.md").write_text("# Refund policy\n\nRefunds above 500 EUR need a finance controller.\n")
    monkeypatch.setenv("OPSRAIL_KNOWLEDGE_DIR", str(own))
    [hit] = json.loads(run.invoke(app, ["decisions", "knowledge", "refund finance", "--json"]).stdout)["items"]
    assert hit["title"] == "Refund policy" and hit["source"].startswith("refunds.md")

    empty = run.invoke(app, ["decisions", "knowledge", "  "])
    assert empty.exit_code == 2 and "give some words" in empty.stderr
