"""Retention on real stores: old payloads go, what accountability needs stays, and each run is audited."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from opsrail.cli import app
from opsrail.model import InvalidInput
from opsrail.services import RetentionService
from opsrail.storage import SqlRetentionStore
from opsrail.wiring import Container
from tests.support import FakeClock, incident_event, ticket_sample

TABLE = """
name: echo
version: 1
inputs:
  note: string
outputs:
  seen: {type: bool}
rules:
  - id: always
    when: "size(note) > 0"
    then: {seen: true}
"""


def test_old_payloads_are_purged_or_anonymised(container: Container, clock: FakeClock, tmp_path: Path) -> None:
    table = tmp_path / "t.yaml"
    table.write_text(TABLE)
    container.decisions.publish_table(table, "ops")
    container.ingestion.ingest_single(orjson.dumps(incident_event("old-1")))
    with pytest.raises(InvalidInput):
        container.ingestion.ingest_single(b'{"specversion": "1.0"}')
    old = container.decisions.evaluate_and_record("echo", {"note": "an old case"})
    clock.advance(days=40)
    container.ingestion.ingest_single(orjson.dumps(incident_event("new-1")))
    new = container.decisions.evaluate_and_record("echo", {"note": "a new case"})

    policies = {
        "events": timedelta(days=30),
        "dead_letters": timedelta(days=30),
        "decision_records": timedelta(days=30),
    }
    retention = RetentionService(SqlRetentionStore(container.engine), clock, policies)
    retention.audit = container.audit
    preview = retention.run(dry_run=True)
    assert {k: v["rows"] for k, v in preview["kinds"].items()} == {
        "dead_letters": 1,
        "decision_records": 1,
        "events": 1,
    }
    assert container.decisions.record(old["id"])["inputs"] == {"note": "an old case"}  # a dry run changes nothing

    done = retention.run(actor="ops")
    assert {k: v["rows"] for k, v in done["kinds"].items()} == {"dead_letters": 1, "decision_records": 1, "events": 1}
    kept = container.decisions.record(old["id"])
    assert kept["inputs"] == {} and kept["outputs"]["seen"] is True and kept["version"] == 1
    assert container.decisions.record(new["id"])["inputs"] == {"note": "a new case"}
    with container.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT event_id, data FROM events ORDER BY seq")).all()
        letters = conn.execute(sa.text("SELECT count(*) FROM dead_letters")).scalar()
    assert [(r[0], r[1] is None) for r in rows] == [("old-1", True), ("new-1", False)]
    assert letters == 0
    [entry] = [e for e in container.audit.export() if e["action"] == "retention.applied"]
    assert entry["actor"] == "ops" and entry["details"]["events"]["rows"] == 1
    assert container.audit.verify().ok


def test_unknown_kinds_are_refused_and_the_cli_needs_policies(
    container: Container, clock: FakeClock, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidInput, match="no retention for sessions"):
        RetentionService(SqlRetentionStore(container.engine), clock, {"sessions": timedelta(days=1)})
    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSRAIL_DATABASE_URL", database_url)
    runner = CliRunner()
    refused = runner.invoke(app, ["retention", "run"])
    assert refused.exit_code == 2 and "OPSRAIL_RETENTION" in refused.stderr
    monkeypatch.setenv("OPSRAIL_RETENTION", '{"events": "P30D"}')
    ran = runner.invoke(app, ["retention", "run", "--dry-run", "--json"])
    assert ran.exit_code == 0, ran.output
    assert orjson.loads(ran.stdout)["kinds"]["events"]["rows"] == 0


def test_old_model_versions_lose_their_artifact_and_training_texts_but_the_newest_answers(
    container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    data = ticket_sample(tmp_path, rows=300)
    columns = {"text": "Document", "label": "Topic_group"}
    for name in ("topic", "topic", "solo"):
        container.decisions.train_model("text-classifier", data, columns, name=name)
    clock.advance(days=40)
    container.decisions.train_model("text-classifier", data, columns, name="topic")
    retention = RetentionService(SqlRetentionStore(container.engine), clock, {"model_versions": timedelta(days=30)})
    retention.audit = container.audit
    with pytest.raises(InvalidInput, match="cannot be pruned here"):
        retention.run(dry_run=True)  # nobody told it how
    retention.prune_models = container.decisions.prune_models

    assert retention.run(dry_run=True)["kinds"]["model_versions"]["rows"] == 2
    done = retention.run(actor="ops")
    assert done["kinds"]["model_versions"]["rows"] == 2
    history = {(v["name"], v["version"]): v for v in container.decisions.store.model_versions()}
    assert [key for key, v in sorted(history.items()) if v["pruned_at"] is not None] == [("topic", 1), ("topic", 2)]
    assert history[("solo", 1)]["bytes"] > 100_000  # old, but the only version: it still answers
    assert container.decisions.evaluate_and_record("topic", {"text": "laptop screen broken"})["version"] == 3
    assert retention.run()["kinds"]["model_versions"]["rows"] == 0
    pruned = [e for e in container.audit.export() if e["action"] == "model.pruned"]
    assert {e["actor"] for e in pruned} == {"ops"} and all("before" in e["details"] for e in pruned)
