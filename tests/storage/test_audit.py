"""The audit log on real stores: what changes state is in it, the database refuses to change it, and verification
names the first entry that was altered, removed or reordered."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from opsrail.cli import app
from opsrail.wiring import Container

PLAYBOOK = """
id: audited
version: 1
steps:
  - id: approve
    approval: {roles: [finance_controller]}
"""


@contextmanager
def tampering(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection with the append-only guard lifted, as an attacker with the database's owner rights would."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        else:
            conn.execute(sa.text("DROP TRIGGER audit_log_no_update"))
            conn.execute(sa.text("DROP TRIGGER audit_log_no_delete"))
        try:
            yield conn
        finally:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))


def act(container: Container, tmp_path: Path) -> None:
    container.tokens.create("operator", "ops")
    path = tmp_path / "pb.yaml"
    path.write_text(PLAYBOOK)
    container.automation.publish(path, "ada")
    run_id = container.automation.start("audited", {}, actor="ada")
    asyncio.run(container.runner.tick())
    [task] = container.automation.tasks()
    container.automation.decide(task["id"], approve=True, by="fiona", comment="fine")
    assert container.automation.show(run_id)["status"] == "succeeded"


def test_changes_are_recorded_and_the_chain_verifies(container: Container, tmp_path: Path) -> None:
    act(container, tmp_path)
    entries = list(container.audit.export())
    assert [e["action"] for e in entries] == ["token.created", "playbook.published", "run.started", "task.approved"]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    assert entries[1]["actor"] == "ada" and entries[1]["subject"] == "audited@1"
    assert entries[3]["actor"] == "fiona" and entries[3]["details"]["comment"] == "fine"
    assert all(e["prev_hash"] == p["hash"] for p, e in itertools.pairwise(entries))
    report = container.audit.verify()
    assert report.ok and report.checked == 4 and report.last_seq == 4


def test_the_database_refuses_to_change_or_remove_entries(container: Container, tmp_path: Path) -> None:
    act(container, tmp_path)
    with pytest.raises(sa.exc.DBAPIError, match="cannot be changed or removed"), container.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"))
    with pytest.raises(sa.exc.DBAPIError, match="cannot be changed or removed"), container.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq = 2"))
    assert container.audit.verify().ok


@pytest.mark.parametrize(
    ("statements", "bad", "problem"),
    [
        (["UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"], 2, "altered"),
        (["DELETE FROM audit_log WHERE seq = 2"], 3, "missing"),
        (
            [
                "UPDATE audit_log SET seq = 100 WHERE seq = 2",
                "UPDATE audit_log SET seq = 2 WHERE seq = 3",
                "UPDATE audit_log SET seq = 3 WHERE seq = 100",
            ],
            2,
            "does not link",
        ),
        (["DELETE FROM audit_log WHERE seq = 4"], None, None),
    ],
    ids=["altered", "removed", "reordered", "last-removed"],
)
def test_verification_names_the_first_bad_entry(
    container: Container, tmp_path: Path, statements: list[str], bad: int | None, problem: str | None
) -> None:
    act(container, tmp_path)
    with tampering(container.engine) as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
    report = container.audit.verify()
    if bad is None:
        # Removing the newest entry leaves a valid shorter chain: the checked count shows it.
        assert report.ok and report.checked == 3
        return
    assert problem is not None
    assert not report.ok and report.first_bad_seq == bad and problem in (report.problem or "")


def test_concurrent_appends_keep_one_chain(container: Container) -> None:
    def append(worker: int) -> None:
        for i in range(10):
            container.audit.record(f"w{worker}", "test.appended", f"{worker}:{i}", {"i": i})

    threads = [threading.Thread(target=append, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = container.audit.verify()
    assert report.ok and report.checked == 80


def test_cli_verify_and_export(
    container: Container, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    act(container, tmp_path)
    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSRAIL_DATABASE_URL", database_url)
    runner = CliRunner()
    verified = runner.invoke(app, ["audit", "verify", "--json"])
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["checked"] == 4
    out = tmp_path / "audit.jsonl"
    exported = runner.invoke(app, ["audit", "export", "--since", "2026-01-01", "--output", str(out)])
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4] and all(len(line["hash"]) == 64 for line in lines)
    later = runner.invoke(app, ["audit", "export", "--since", "2030-01-01"])
    assert later.exit_code == 0 and later.stdout == ""
    bad_since = runner.invoke(app, ["audit", "export", "--since", "yesterday"])
    assert bad_since.exit_code == 2 and "ISO 8601" in bad_since.stderr
    with tampering(container.engine) as conn:
        conn.execute(sa.text("UPDATE audit_log SET action = 'nothing.happened' WHERE seq = 3"))
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1 and "entry 3" in broken.stderr and "altered" in broken.stderr
