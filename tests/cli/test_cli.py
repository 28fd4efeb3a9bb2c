"""The CLI, run in-process with Typer's runner against a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from opsrail.cli import app
from tests.support import cloudevent, incident_event

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSRAIL_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    result = runner.invoke(app, ["db", "upgrade", "--json"])
    assert result.exit_code == 0, result.output
    return runner


def test_db_upgrade_is_idempotent(run: CliRunner) -> None:
    result = run.invoke(app, ["db", "upgrade", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["to"] == json.loads(result.stdout)["from"]


def test_tokens_are_created_once_and_listed_without_secrets(run: CliRunner) -> None:
    created = run.invoke(app, ["tokens", "create", "--role", "operator", "--name", "ops", "--json"])
    assert created.exit_code == 0, created.output
    token = json.loads(created.stdout)
    assert token["token"].startswith("opsr_") and token["role"] == "operator"
    listed = json.loads(run.invoke(app, ["tokens", "list", "--json"]).stdout)
    assert [t["name"] for t in listed] == ["ops"]
    assert "token" not in listed[0]
    bad = run.invoke(app, ["tokens", "create", "--role", "root"])
    assert bad.exit_code == 2 and "unknown role" in bad.stderr
    revoked = run.invoke(app, ["tokens", "revoke", token["id"], "--json"])
    assert json.loads(revoked.stdout) == {"id": token["id"], "revoked": True}
    assert run.invoke(app, ["tokens", "revoke", token["id"]]).exit_code == 4


def test_send_list_dead_letter_and_replay(run: CliRunner, tmp_path: Path) -> None:
    single = tmp_path / "incident.json"
    single.write_bytes((FIXTURES / "incident_event.json").read_bytes())
    sent = run.invoke(app, ["events", "send", str(single), "--json"])
    assert sent.exit_code == 0, sent.output
    assert json.loads(sent.stdout)["events"][0]["status"] == "accepted"
    again = run.invoke(app, ["events", "send", str(single)])
    assert again.stdout.startswith("duplicate")

    jira = run.invoke(app, ["events", "send", str(FIXTURES / "jira_issue_created.json"), "--source", "jira"])
    assert jira.exit_code == 0, jira.output

    batch = tmp_path / "batch.ndjson"
    batch.write_bytes(b"\n".join([orjson.dumps(cloudevent("c1")), orjson.dumps(incident_event("c2", severity=9))]))
    mixed = run.invoke(app, ["events", "send", str(batch), "--json"])
    assert mixed.exit_code == 2
    outcome = json.loads(mixed.stdout)
    assert (outcome["accepted"], outcome["rejected"]) == (1, 1)
    letter_id = outcome["results"][1]["dead_letter_id"]

    events = json.loads(run.invoke(app, ["events", "list", "--kind", "incident", "--json"]).stdout)
    assert {e["object_id"] for e in events} == {"monitoring:checkout-eu-5xx", "jira:ENG-42"}
    table = run.invoke(app, ["events", "list"])
    assert "sev1" in table.stdout and "com.opsrail.incident.opened" in table.stdout

    letters = json.loads(run.invoke(app, ["events", "dead-letters", "--status", "pending", "--json"]).stdout)
    assert [d["id"] for d in letters] == [letter_id]
    assert letters[0]["errors"][0]["path"] == "$[1].data.severity"
    shown = json.loads(run.invoke(app, ["events", "dead-letters", letter_id, "--json"]).stdout)
    assert json.loads(shown["body"])["id"] == "c2"

    replay = run.invoke(app, ["events", "replay", letter_id])
    assert replay.exit_code == 2 and "kept as dead letter" in replay.stderr
    assert run.invoke(app, ["events", "replay", "dl_nope"]).exit_code == 4
    assert run.invoke(app, ["events", "dead-letters", "--status", "lost"]).exit_code == 2


def test_send_reads_standard_input_and_reports_bad_json(run: CliRunner) -> None:
    result = run.invoke(app, ["events", "send", "-"], input='{"specversion": "1.0", "id": ')
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr and "dead letter" in result.stderr
    missing = run.invoke(app, ["events", "send", "/nonexistent.json"])
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_schema_export_writes_every_schema(run: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    result = run.invoke(app, ["schema", "export", str(out), "--json"])
    assert result.exit_code == 0
    files = json.loads(result.stdout)["files"]
    assert len(files) == 15
    incident = json.loads((out / "incident.schema.json").read_text())
    assert incident["$id"].startswith("urn:opsrail:schema:incident:")


def test_errors_are_one_line_with_an_exit_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSRAIL_DATABASE_URL", "mysql://nobody@localhost/db")
    result = runner.invoke(app, ["events", "list"])
    assert result.exit_code == 2 and "invalid settings: OPSRAIL_DATABASE_URL" in result.stderr
    monkeypatch.delenv("OPSRAIL_DATABASE_URL")
    for variable, value, said in [
        ("OPSRAIL_RETENTION", "events=P1D", "OPSRAIL_RETENTION is not valid JSON"),
        ("OPSRAIL_RETENTION", '{"events": "soon"}', "OPSRAIL_RETENTION (events): Input should be a valid timedelta"),
        ("OPSRAIL_SUMMARY_URL", "api.example.invalid/v1", "OPSRAIL_SUMMARY_URL: must be an http:// or https:// URL"),
        ("OPSRAIL_KNOWLEDGE_DIR", str(tmp_path / "runbooks"), "OPSRAIL_KNOWLEDGE_DIR: no folder"),
    ]:
        monkeypatch.setenv(variable, value)
        refused = runner.invoke(app, ["up"])
        assert refused.exit_code == 2 and said in refused.stderr, refused.output
        monkeypatch.delenv(variable)
    unmigrated = runner.invoke(app, ["events", "list"])
    assert unmigrated.exit_code == 6 and "opsrail db upgrade" in unmigrated.stderr
    assert "Traceback" not in unmigrated.output


def test_tokens_expire_rotate_and_carry_a_rate_limit(run: CliRunner) -> None:
    created = run.invoke(
        app,
        [
            "tokens",
            "create",
            "--role",
            "service",
            "--name",
            "ci",
            "--expires-in",
            "P30D",
            "--rate-limit",
            "5",
            "--json",
        ],
    )
    assert created.exit_code == 0, created.output
    token = json.loads(created.stdout)
    assert token["expires_at"] and token["rate_limit"] == 5.0
    bad = run.invoke(app, ["tokens", "create", "--role", "service", "--expires-in", "soon"])
    assert bad.exit_code == 2 and "ISO 8601" in bad.stderr
    rotated = run.invoke(app, ["tokens", "rotate", token["id"], "--grace", "PT1H", "--json"])
    assert rotated.exit_code == 0, rotated.output
    new = json.loads(rotated.stdout)
    assert new["replaces"] == token["id"] and new["token"] != token["token"] and new["name"] == "ci"
    listed = {t["id"]: t for t in json.loads(run.invoke(app, ["tokens", "list", "--json"]).stdout)}
    assert listed[token["id"]]["expires_at"] < listed[new["id"]]["expires_at"]


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["runs", "list", "--status", "done"], "--status 'done' is not one of running, paused"),
        (["connectors", "dead-letters", "--status", "failed"], "--status 'failed' is not one of dead, replayed, all"),
        (["tasks", "list", "--role", "finance"], "role 'finance' is not one of admin"),
        (["tasks", "list", "--mine", "--role", "Operator"], "role 'Operator' is not one of admin"),
        (["events", "list", "--kind", "incidents"], "kind 'incidents' is not one of account"),
    ],
)
def test_a_filter_outside_its_vocabulary_is_refused_not_an_empty_list(
    run: CliRunner, command: list[str], named: str
) -> None:
    refused = run.invoke(app, command)
    assert refused.exit_code == 2 and named in refused.stderr
    assert refused.stdout == ""


def test_up_says_in_one_line_when_it_cannot_listen(run: CliRunner, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        taken = run.invoke(app, ["up", "--port", str(port)])
    assert taken.exit_code == 6 and f"port {port} on 127.0.0.1 is already in use" in taken.stderr
    unknown = run.invoke(app, ["up", "--host", "256.1.1.1"])
    assert unknown.exit_code == 2 and "cannot listen on '256.1.1.1'" in unknown.stderr
    assert run.invoke(app, ["up", "--port", "99999"]).exit_code == 2
    assert "Traceback" not in taken.output + unknown.output
    # The demo's drift is for the demo; a wrong one is refused before anything starts.
    alone = run.invoke(app, ["up", "--drift", "region=EU:reject=0.5"])
    assert alone.exit_code == 2 and "--drift shapes the demo's simulated world" in alone.stderr
    mars = run.invoke(app, ["up", "--demo", "--drift", "region=Mars:reject=0.5"])
    assert mars.exit_code == 2 and "no region 'Mars'" in mars.stderr


def test_an_empty_list_says_so_and_what_to_do(run: CliRunner) -> None:
    empty = run.invoke(app, ["runs", "list"])
    assert empty.exit_code == 0
    assert empty.stdout.startswith("Runs (newest first): none. Start one with `opsrail runs start PLAYBOOK`")
    filtered = run.invoke(app, ["runs", "list", "--status", "failed"])
    assert "none. No run matches these filters" in filtered.stdout
    assert "none. Nothing is waiting for a person" in run.invoke(app, ["tasks", "list"]).stdout
    assert run.invoke(app, ["runs", "list", "--json"]).stdout.strip() == "[]"  # scripts still get JSON


def test_runs_start_checks_the_input_against_the_trigger(run: CliRunner, tmp_path: Path) -> None:
    playbook = tmp_path / "quote.yaml"
    playbook.write_text(
        "id: quote-check\nversion: 1\ntrigger: {events: [com.opsrail.quote.submitted]}\n"
        "steps:\n  - id: note\n    action: core.set\n    with: {q: '${ run.input.id }'}\n"
    )
    assert run.invoke(app, ["playbooks", "publish", str(playbook)]).exit_code == 0
    refused = run.invoke(app, ["runs", "start", "quote-check", "--input", '{"discount": "lots"}'])
    assert refused.exit_code == 2
    assert "quote-check is triggered by com.opsrail.quote.submitted" in refused.output
    assert "$.input.discount" in refused.output and "--skip-input-check" in refused.output
    forced = run.invoke(app, ["runs", "start", "quote-check", "--input", '{"discount": "lots"}', "--skip-input-check"])
    assert forced.exit_code == 0, forced.output
    assert forced.stdout.strip().startswith("run_")


def test_publish_warns_of_what_a_playbook_names_and_nobody_offers(run: CliRunner, tmp_path: Path) -> None:
    playbook = tmp_path / "typo.yaml"
    playbook.write_text(
        "id: typo\nversion: 1\nsteps:\n  - id: note\n    notify: {channel: core.lgo, message: hi}\n"
        "  - id: route\n    decide: nothing-like-it\n"
    )
    published = run.invoke(app, ["playbooks", "publish", str(playbook)])
    assert published.exit_code == 0 and published.stdout.strip() == "published typo version 1 (active)"
    assert "warning: $.steps[0].notify.channel: no configured connector offers 'core.lgo'" in published.stderr
    assert "(did you mean 'core.log'?); a run fails at that step until it exists" in published.stderr
    as_json = json.loads(run.invoke(app, ["playbooks", "publish", str(playbook), "--json"]).stdout)
    assert [w["code"] for w in as_json["warnings"]] == ["unknown_operation", "unknown_decision"]
    shown = run.invoke(app, ["playbooks", "show", "typo"])
    assert shown.exit_code == 0 and "warning: $.steps[1].decide: no published table or model" in shown.stderr
    assert len(json.loads(run.invoke(app, ["playbooks", "show", "typo", "--json"]).stdout)["warnings"]) == 2


def test_activate_records_who_activated(run: CliRunner, tmp_path: Path) -> None:
    playbook = tmp_path / "flow.yaml"
    text = "id: flow\nversion: {v}\nsteps:\n  - id: a\n    action: core.set\n    with: {{x: {v}}}\n"
    for version in (1, 2):
        playbook.write_text(text.format(v=version))
        assert run.invoke(app, ["playbooks", "publish", str(playbook)]).exit_code == 0
    activated = run.invoke(app, ["playbooks", "activate", "flow", "1", "--as", "olive"])
    assert activated.exit_code == 0 and activated.stdout.strip() == "flow version 1 is active"
    canary = run.invoke(app, ["playbooks", "activate", "flow", "2", "--canary", "20", "--as", "olive"])
    assert canary.stdout.strip() == "flow version 2 takes 20% of new runs"
    entries = json.loads(run.invoke(app, ["audit", "list", "--json"]).stdout)
    assert [(e["actor"], e["subject"]) for e in entries if e["action"] == "playbook.activated"] == [
        ("olive", "flow@1"),
        ("olive", "flow@2"),
    ]


def test_publish_without_activating_keeps_the_active_version(run: CliRunner, tmp_path: Path) -> None:
    playbook = tmp_path / "flow.yaml"
    text = "id: staged\nversion: {v}\nsteps:\n  - id: a\n    action: core.set\n    with: {{x: {v}}}\n"
    playbook.write_text(text.format(v=1))
    first = run.invoke(app, ["playbooks", "publish", str(playbook), "--no-activate", "--json"])
    assert first.exit_code == 0 and json.loads(first.stdout)["active"] is False
    # A playbook with no active version starts no run until one is activated.
    refused = run.invoke(app, ["runs", "start", "staged"])
    assert refused.exit_code == 4 and "has no active version" in refused.output
    assert run.invoke(app, ["playbooks", "activate", "staged", "1"]).exit_code == 0
    playbook.write_text(text.format(v=2))
    staged = run.invoke(app, ["playbooks", "publish", str(playbook), "--no-activate"])
    assert "published staged version 2, not active: `opsrail playbooks activate staged 2`" in staged.stdout
    listed = {p["version"]: p["active"] for p in json.loads(run.invoke(app, ["playbooks", "list", "--json"]).stdout)}
    assert listed == {1: True, 2: False}
