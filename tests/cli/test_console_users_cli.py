"""Console passwords from the CLI: set from a file or stdin, never from an argument; sign-in works with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsrail.cli import app
from opsrail.model import Unauthenticated
from opsrail.settings import Settings
from opsrail.wiring import build


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    monkeypatch.setenv("OPSRAIL_DATABASE_URL", database_url)
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    return runner


def test_a_password_from_a_file_lets_the_person_sign_in(run: CliRunner, tmp_path: Path, database_url: str) -> None:
    secret = tmp_path / "fiona.pw"
    secret.write_text("a long enough passphrase\n")
    created = run.invoke(
        app, ["users", "create", "fiona", "--role", "finance_controller", "--password-file", str(secret), "--json"]
    )
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["has_password"] is True
    listed = run.invoke(app, ["users", "list", "--json"])
    assert "passphrase" not in listed.stdout and "password_hash" not in listed.stdout

    container = build(Settings(home=tmp_path, database_url=database_url))
    session, _ = container.sessions.sign_in_password("fiona", "a long enough passphrase")
    assert session.principal.roles == frozenset({"finance_controller"})
    with pytest.raises(Unauthenticated):
        container.sessions.sign_in_password("fiona", "a long enough passphrasE")
    container.close()


def test_set_password_reads_stdin_and_refuses_short_ones(run: CliRunner, tmp_path: Path, database_url: str) -> None:
    assert run.invoke(app, ["users", "create", "olive", "--role", "operator"]).exit_code == 0
    short = run.invoke(app, ["users", "set-password", "olive", "--password-stdin"], input="short\n")
    assert short.exit_code == 2 and "at least 10 characters" in short.output
    done = run.invoke(app, ["users", "set-password", "olive", "--password-stdin"], input="olive's new passphrase\n")
    assert done.exit_code == 0 and "password set for olive" in done.stdout
    nobody = run.invoke(app, ["users", "set-password", "nobody", "--password-stdin"], input="whatever it is\n")
    assert nobody.exit_code == 4 and "no active user" in nobody.output
    container = build(Settings(home=tmp_path, database_url=database_url))
    assert container.sessions.sign_in_password("olive", "olive's new passphrase")[0].principal.name == "olive"
    container.close()
