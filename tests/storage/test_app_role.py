"""The application's PostgreSQL role: Opsrail runs as it, yet it cannot change, remove or unguard audit entries.

Each test makes its own role (roles belong to the whole server, so names are unique per test and xdist worker) and
drops it at the end; the tables are the session's migrated database, emptied per test by the ``database_url``
fixture.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
import sqlalchemy as sa
import typer
from psycopg import sql
from typer.testing import CliRunner

from opsrail.cli._common import handled
from opsrail.cli._database import db_grant_app_role
from opsrail.model import InvalidInput, NotFound
from opsrail.services import RetentionService
from opsrail.settings import Settings
from opsrail.storage import SqlRetentionStore
from opsrail.storage._roles import application_role_report, grant_application_role
from opsrail.wiring import Container, build
from tests.support import FakeClock, SequentialIds, incident_event

POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

PLAYBOOK = """
id: guarded
version: 1
steps:
  - id: approve
    approval: {roles: [finance_controller]}
"""


def _drop_role(database_url: str, role: str) -> None:
    """Revoke what the role was granted here (DROP OWNED also drops anything it made), then drop it."""
    url = sa.engine.make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if exists:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def role(database_url: str) -> Iterator[str]:
    """A role name no other test or worker uses; dropped afterwards whether or not the test created it."""
    name = f"opsrail_app_{secrets.token_hex(5)}"
    yield name
    if database_url.startswith("postgresql"):
        _drop_role(database_url, name)


@pytest.fixture
def role_url(database_url: str, role: str) -> str:
    """The test database's URL, logging in as the role (the local server trusts 127.0.0.1)."""
    return sa.engine.make_url(database_url).set(username=role, password=None).render_as_string(hide_password=False)


@pytest.fixture
def granted(container: Container, role: str) -> list[str]:
    """The migrated database (owned by the admin user the suite runs as), with the role made and granted."""
    return grant_application_role(container.engine, role)


@pytest.fixture
def as_role(granted: list[str], role_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Container]:
    """Opsrail as a deployment runs it: built on the role's URL, with the start-up upgrade (a no-op at head)."""
    settings = Settings(home=tmp_path / "app", database_url=role_url)
    built = build(settings, migrate=True, clock=clock, ids=SequentialIds())
    yield built
    built.close()


def refused(engine: sa.Engine, statement: str) -> psycopg.errors.InsufficientPrivilege:
    """Run ``statement`` in its own transaction; it must fail for want of privilege, not for any other reason."""
    with pytest.raises(sa.exc.DBAPIError) as info, engine.begin() as conn:
        conn.execute(sa.text(statement))
    assert isinstance(info.value.orig, psycopg.errors.InsufficientPrivilege), info.value
    return info.value.orig


def work(container: Container, tmp_path: Path) -> str:
    """Ordinary application work: a token, a playbook, a run claimed by the worker (``FOR UPDATE SKIP LOCKED``)
    up to its approval task, an event."""
    container.tokens.create("operator", "ops")
    path = tmp_path / "pb.yaml"
    path.write_text(PLAYBOOK)
    container.automation.publish(path, "ada")
    run_id = container.automation.start("guarded", {}, actor="ada")
    asyncio.run(container.runner.tick())
    [task] = container.automation.tasks()
    assert task["run_id"] == run_id and task["status"] == "open"
    container.ingestion.ingest_single(orjson.dumps(incident_event("as-role-1")))
    return run_id


@POSTGRES
def test_the_role_appends_through_the_audit_store(as_role: Container) -> None:
    before = len(list(as_role.audit.export()))  # building the container may itself have audited something
    entry = as_role.audit.record("ada", "test.appended", "subject-1", {"n": 1})
    second = as_role.audit.record("ada", "test.appended", "subject-2", {"n": 2})
    assert second.seq == entry.seq + 1 and second.prev_hash == entry.hash
    report = as_role.audit.verify()
    assert report.ok and report.checked == before + 2 and report.last_seq == second.seq


@POSTGRES
def test_the_role_cannot_update_delete_or_truncate_audit_entries(as_role: Container) -> None:
    entry = as_role.audit.record("ada", "test.appended", None, {})
    for statement in (
        f"UPDATE audit_log SET actor = 'mallory' WHERE seq = {entry.seq}",
        "UPDATE audit_log SET actor = 'mallory'",
        f"DELETE FROM audit_log WHERE seq = {entry.seq}",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "SELECT seq FROM audit_log FOR UPDATE",
    ):
        error = refused(as_role.engine, statement)
        assert "permission denied" in str(error)
    kept = [e for e in as_role.audit.export() if e["seq"] == entry.seq]
    assert [e["actor"] for e in kept] == ["ada"] and as_role.audit.verify().ok


@POSTGRES
def test_the_role_cannot_drop_or_disable_the_guard(as_role: Container) -> None:
    for statement in (
        "DROP TRIGGER audit_log_append_only ON audit_log",
        "ALTER TABLE audit_log DISABLE TRIGGER ALL",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
        "DROP TABLE audit_log",
        "ALTER TABLE audit_log RENAME TO audit_log_old",
        "DROP FUNCTION opsrail_audit_append_only()",
        "CREATE OR REPLACE FUNCTION opsrail_audit_append_only() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RETURN OLD; END $$",
        "CREATE TRIGGER sneaky BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION opsrail_audit_append_only()",
    ):
        refused(as_role.engine, statement)
    with as_role.engine.connect() as conn:
        enabled = conn.execute(
            sa.text("SELECT tgenabled FROM pg_trigger WHERE tgname = 'audit_log_append_only'")
        ).scalar_one()
    assert enabled == "O"


@POSTGRES
def test_the_role_cannot_create_tables_or_become_the_owner(as_role: Container) -> None:
    error = refused(as_role.engine, "CREATE TABLE x (id integer)")
    assert "schema" in str(error)
    refused(as_role.engine, "SET ROLE postgres")
    refused(as_role.engine, "SELECT setval('events_seq_seq', 1)")
    refused(as_role.engine, "UPDATE alembic_version SET version_num = 'x'")


@POSTGRES
def test_the_application_works_as_the_role(
    as_role: Container, container: Container, tmp_path: Path, clock: FakeClock
) -> None:
    run_id = work(as_role, tmp_path)
    clock.advance(days=40)
    retention = RetentionService(
        SqlRetentionStore(as_role.engine), clock, {"events": timedelta(days=30), "dead_letters": timedelta(days=30)}
    )
    retention.audit = as_role.audit
    done = retention.run(actor="ops")
    assert done["kinds"]["events"]["rows"] == 1
    actions = [e["action"] for e in as_role.audit.export()]
    assert {"token.created", "playbook.published", "run.started"} <= set(actions)
    assert actions[-1] == "retention.applied"
    assert as_role.audit.verify().ok
    # The owner sees what the role wrote to the ordinary tables.
    with container.engine.connect() as conn:
        status = conn.execute(sa.text("SELECT status FROM runs WHERE id = :id"), {"id": run_id}).scalar_one()
        steps = conn.execute(sa.text("SELECT count(*) FROM run_log WHERE run_id = :id"), {"id": run_id}).scalar()
        event = conn.execute(sa.text("SELECT event_id, data FROM events")).one()
    assert status == "running" and steps and event == ("as-role-1", None)
    # Old finished runs go too: the role may delete them, with their steps, tasks and log, once archived.
    [task] = as_role.automation.tasks()
    as_role.automation.decide(task["id"], approve=True, by="fiona", comment="checked")
    asyncio.run(as_role.runner.tick())
    clock.advance(days=40)
    old_runs = RetentionService(
        SqlRetentionStore(as_role.engine), clock, {"runs": timedelta(days=30)}, archive_dir=tmp_path
    )
    old_runs.archive_runs = as_role.insights.archive_runs
    assert old_runs.run(actor="ops")["kinds"]["runs"]["archived_runs"] == 1
    with container.engine.connect() as conn:
        left = [
            conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {column} = :id"), {"id": run_id}).scalar()
            for table, column in (("runs", "id"), ("run_steps", "run_id"), ("tasks", "run_id"), ("run_log", "run_id"))
        ]
    assert left == [0, 0, 0, 0]


@POSTGRES
def test_the_grant_is_exact_idempotent_and_reported(
    container: Container, granted: list[str], role: str, role_url: str, tmp_path: Path
) -> None:
    assert granted[0].startswith(f'CREATE ROLE "{role}" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT')
    assert f'GRANT SELECT, INSERT ON TABLE "public"."audit_log" TO "{role}"' in granted
    assert f'GRANT SELECT ON TABLE "public"."alembic_version" TO "{role}"' in granted
    report = application_role_report(container.engine, role)
    assert report["ok"], report["problems"]
    assert report["owns"] == [] and report["acts_as_owner"] == []
    assert report["tables"]["audit_log"]["holds"] == ["SELECT", "INSERT"]
    assert report["tables"]["alembic_version"]["holds"] == ["SELECT"]
    assert report["tables"]["runs"]["holds"] == ["SELECT", "INSERT", "UPDATE", "DELETE"]
    assert report["schema_privileges"] == {"usage": True, "create": False}
    assert set(report["sequences"]) == {"events_seq_seq", "run_log_seq_seq"}

    again = grant_application_role(container.engine, role)
    assert again == granted[1:]  # the role exists now; the privileges are set the same way
    assert application_role_report(container.engine, role) == report
    restarted = build(Settings(home=tmp_path / "app", database_url=role_url), migrate=True)
    try:
        assert restarted.health.schema_is_current()
    finally:
        restarted.close()


@POSTGRES
def test_a_password_is_set_but_never_shown(container: Container, role: str) -> None:
    secret = "s3cret'; DROP TABLE audit_log; --%s"
    statements = grant_application_role(container.engine, role, password=secret)
    assert statements[0].endswith("PASSWORD '***'")
    assert not any(secret in s or "SCRAM" in s for s in statements)
    with container.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": role}).scalar()
    assert str(stored).startswith("SCRAM-SHA-256$")
    changed = grant_application_role(container.engine, role, password="another one")
    assert changed[0] == f"ALTER ROLE \"{role}\" WITH PASSWORD '***'"
    with container.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT to_regclass('audit_log')")).scalar() is not None


@POSTGRES
def test_unsafe_roles_and_names_are_refused(container: Container, role: str) -> None:
    with pytest.raises(InvalidInput, match="superuser") as info:
        grant_application_role(container.engine, "postgres")
    assert "owner" in info.value.detail and info.value.hint
    for name in ('x"; DROP TABLE audit_log; --', "Opsrail", "1app", "pg_app", "public", "a" * 64, ""):
        with pytest.raises(InvalidInput, match=r"role name|reserved"):
            grant_application_role(container.engine, name)
    with pytest.raises(NotFound, match="does not exist"):
        grant_application_role(container.engine, role, create=False)
    missing = application_role_report(container.engine, role)
    assert not missing["ok"] and missing["problems"] == [f"role {role} does not exist"]
    owner = application_role_report(container.engine, "postgres")
    assert not owner["ok"] and "postgres" in owner["acts_as_owner"]
    assert any("UPDATE, DELETE" in p and "audit_log" in p for p in owner["problems"])
    with container.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar() == 0


@POSTGRES
def test_the_command_grants_and_checks(
    container: Container, role: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSRAIL_DATABASE_URL", database_url)
    cli = typer.Typer()
    cli.command()(handled(db_grant_app_role))
    runner = CliRunner()
    unknown = runner.invoke(cli, [role, "--check"])
    assert unknown.exit_code == 1 and "does not exist" in unknown.stderr
    password = tmp_path / "password"
    password.write_text("very secret\n")
    made = runner.invoke(cli, [role, "--password-file", str(password)])
    assert made.exit_code == 0, made.output
    assert "PASSWORD '***';" in made.stdout and "very secret" not in made.output
    checked = runner.invoke(cli, [role, "--check", "--json"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["ok"] is True
    owner = runner.invoke(cli, ["postgres", "--check"])
    assert owner.exit_code == 1 and "superuser" in owner.stderr
    empty = tmp_path / "empty"
    empty.write_text("")
    refused_ = runner.invoke(cli, [role, "--password-file", str(empty)])
    assert refused_.exit_code == 2 and "empty" in refused_.stderr


@SQLITE
def test_sqlite_has_no_roles(container: Container, role: str) -> None:
    with pytest.raises(InvalidInput, match="PostgreSQL only") as info:
        grant_application_role(container.engine, role)
    assert info.value.hint and "file permissions" in info.value.hint
    with pytest.raises(InvalidInput, match="PostgreSQL only"):
        application_role_report(container.engine, role)
