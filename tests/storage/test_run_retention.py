"""Retention of runs on real stores (SQLite and PostgreSQL): old finished runs are archived as an event log, then
deleted with their steps, tasks and log, a family (a run and the runs its ``call`` steps started) at a time."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from opsrail.cli import app
from opsrail.ml import read_event_log
from opsrail.model import InvalidInput
from opsrail.services import RetentionService
from opsrail.storage import SqlRetentionStore
from opsrail.wiring import Container
from tests.support import FakeClock, drain, publish

CHILD = """
id: provision
version: 1
steps:
  - id: create
    action: core.set
    with: {tenant: "${ run.input.name }"}
"""

PARENT = """
id: onboarding
version: 1
steps:
  - id: tenant
    call: {playbook: provision, input: {name: "${ run.input.customer }"}}
  - id: sign_off
    needs: [tenant]
    approval: {roles: [approver]}
    when: "run.input.sign_off"
"""

QUICK = """
id: quick
version: 1
steps:
  - id: only
    action: core.set
    with: {n: "${ run.input.n }"}
"""


def counts(container: Container) -> dict[str, int]:
    with container.engine.connect() as conn:
        return {
            table: int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("runs", "run_steps", "tasks", "run_log")
        }


def retention(container: Container, clock: FakeClock, **kwargs: object) -> RetentionService:
    service = RetentionService(SqlRetentionStore(container.engine), clock, {"runs": timedelta(days=30)}, **kwargs)  # type: ignore[arg-type]
    service.audit = container.audit
    service.archive_runs = container.insights.archive_runs
    return service


def history(container: Container, clock: FakeClock, tmp_path: Path) -> dict[str, str]:
    """Runs of day 0 (quick ones, a whole family, a family whose parent waits for a sign-off) and of day 35."""
    for text, name in ((CHILD, "child.yaml"), (PARENT, "parent.yaml"), (QUICK, "quick.yaml")):
        publish(container, tmp_path, text, name)
    ids = {f"quick-{n}": container.automation.start("quick", {"n": n}) for n in range(3)}
    ids["done"] = container.automation.start("onboarding", {"customer": "acme", "sign_off": False})
    ids["waiting"] = container.automation.start("onboarding", {"customer": "globex", "sign_off": True})
    drain(container)
    children = {run["input"]["name"]: run["id"] for run in container.automation.runs(playbook_id="provision")}
    ids["done-child"], ids["waiting-child"] = children["acme"], children["globex"]
    clock.advance(days=35)
    ids["recent"] = container.automation.start("quick", {"n": 9})
    drain(container)
    return ids


def test_old_runs_are_archived_then_deleted_a_whole_family_at_a_time(
    container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    ids = history(container, clock, tmp_path)
    clock.advance(days=5)  # day 40: the cut-off is day 10
    old = {ids[name] for name in ("quick-0", "quick-1", "quick-2", "done", "done-child")}
    before = counts(container)
    service = retention(container, clock, archive_dir=tmp_path)
    preview = service.run(dry_run=True)
    assert preview["kinds"]["runs"]["rows"] == 5
    assert counts(container) == before  # a dry run changes nothing

    done = service.run(actor="ops")["kinds"]["runs"]
    assert done["rows"] == 5 and done["archived_runs"] == 5 and done["runs_without_step_ends"] == 0
    with container.engine.connect() as conn:
        kept = set(conn.execute(sa.text("SELECT id FROM runs")).scalars())
        for table in ("run_steps", "tasks", "run_log"):
            left = set(conn.execute(sa.text(f"SELECT DISTINCT run_id FROM {table}")).scalars())
            assert not left & old, table
    # The waiting parent keeps its finished child; the recent run is within the period.
    assert kept == {ids["waiting"], ids["waiting-child"], ids["recent"]}
    assert container.automation.show(ids["waiting"])["status"] == "running"
    assert len(container.automation.tasks(limit=10)) == 1  # the sign-off still to do

    archive = Path(done["archive"])
    assert (
        archive.parent == tmp_path
        and archive.name == f"runs-ended-before-{clock.now() - timedelta(days=30):%Y%m%dT%H%M%SZ}.csv.gz"
    )
    log = read_event_log(archive)
    assert {case.case_id for case in log.cases} == old
    by_id = {case.case_id: case for case in log.cases}
    assert by_id[ids["done-child"]].attributes["case:parent_run"] == ids["done"]
    assert [event.activity for event in by_id[ids["quick-0"]].events] == ["only"]
    [entry] = [e for e in container.audit.export() if e["action"] == "retention.applied"]
    assert entry["actor"] == "ops" and entry["details"]["runs"]["sha256"] == done["sha256"]
    assert container.audit.verify().ok
    # Nothing more to do; the next archive would not overwrite this one.
    again = service.run()["kinds"]["runs"]
    assert again["rows"] == 0 and "archive" not in again and archive.exists()


def test_a_family_stays_while_one_of_its_runs_is_open(container: Container, clock: FakeClock, tmp_path: Path) -> None:
    ids = history(container, clock, tmp_path)
    # The finished parent of a child that is (made) still open: neither goes.
    with container.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE runs SET status = 'running', finished_at = NULL WHERE id = :id"), {"id": ids["done-child"]}
        )
    clock.advance(days=5)
    store = SqlRetentionStore(container.engine)
    going = store.runs_to_purge(clock.now() - timedelta(days=30))
    assert set(going) == {ids["quick-0"], ids["quick-1"], ids["quick-2"]}
    assert going == [ids["quick-0"], ids["quick-1"], ids["quick-2"]]  # oldest first
    # A run asked for that is no longer finished before the cut-off (retried meanwhile) stays.
    cut = clock.now() - timedelta(days=30)
    assert store.purge_runs([ids["waiting"], ids["recent"], ids["done-child"]], cut) == 0
    # Once the parent is gone, its old child may go on its own.
    with container.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM runs WHERE id = :id"), {"id": ids["waiting"]})
    assert ids["waiting-child"] in store.runs_to_purge(cut)
    assert store.purge_runs([ids["waiting-child"]], cut) == 1


def test_runs_go_only_with_an_archive_unless_told_otherwise(
    container: Container, clock: FakeClock, tmp_path: Path
) -> None:
    history(container, clock, tmp_path)
    clock.advance(days=5)
    before = counts(container)
    with pytest.raises(InvalidInput, match="no archive folder is set") as refused:
        retention(container, clock).run()
    assert "OPSRAIL_RETENTION_ARCHIVE" in (refused.value.hint or "")
    with pytest.raises(InvalidInput, match="no archive folder"):
        retention(container, clock).run(archive_dir=tmp_path / "missing")
    assert counts(container) == before
    assert retention(container, clock).run(dry_run=True)["kinds"]["runs"]["rows"] == 5  # counting needs no folder
    done = retention(container, clock).run(no_archive=True)["kinds"]["runs"]
    assert done == {"keep": 30 * 86_400.0, "before": done["before"], "rows": 5, "archive": None}
    assert counts(container)["runs"] == before["runs"] - 5


def test_the_cli_archives_to_the_folder_it_is_given(
    container: Container, clock: FakeClock, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    history(container, clock, tmp_path)
    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSRAIL_DATABASE_URL", database_url)
    monkeypatch.setenv("OPSRAIL_RETENTION", '{"runs": "P1D"}')  # the CLI's clock is the real one: every old run
    runner = CliRunner()
    refused = runner.invoke(app, ["retention", "run"])
    assert refused.exit_code == 2 and "no archive folder is set" in refused.stderr and "--archive" in refused.stderr
    both = runner.invoke(app, ["retention", "run", "--archive", str(tmp_path), "--no-archive"])
    assert both.exit_code == 2 and "contradict" in both.stderr
    folder = tmp_path / "archive"
    folder.mkdir()
    ran = runner.invoke(app, ["retention", "run", "--archive", str(folder)])
    assert ran.exit_code == 0, ran.output
    assert "runs: deleted 6 that ended before" in ran.stdout and "archived 6 run(s), 6 event(s) to" in ran.stdout
    [archive] = folder.iterdir()
    assert len(read_event_log(archive).cases) == 6
    monkeypatch.setenv("OPSRAIL_RETENTION_ARCHIVE", str(folder))
    quiet = runner.invoke(app, ["retention", "run", "--json"])
    assert quiet.exit_code == 0, quiet.output
    assert json.loads(quiet.stdout)["kinds"]["runs"]["rows"] == 0
