"""What a process pays to start: the CLI and the server build the services and compile CEL, and neither loads
what it does not use (CEL's interactive shell, an unused TLS context, a password hash nobody checks)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from opsrail.model import Unauthenticated
from opsrail.settings import Settings
from opsrail.wiring import build

_CEL_SCRIPT = textwrap.dedent(
    """
    import sys
    from opsrail.decisions import load_table  # decisions and playbooks both compile CEL
    from opsrail.playbooks import compile_cel
    from opsrail.playbooks._expressions import Expression  # the playbooks' expressions compile with it too

    assert "prompt_toolkit" not in sys.modules and "cel.cli" not in sys.modules, "CEL's shell was imported"
    assert compile_cel("a + 1").execute({"a": 2}) == 3
    assert compile_cel("x.size() > 1 && y").variables() == ["x", "y"]
    try:
        compile_cel("a +")
    except ValueError as error:
        assert "parse" in str(error).lower(), error
    else:
        raise AssertionError("a syntax error compiled")
    import cel  # a later import of the whole package reuses the loaded core

    assert cel.compile is sys.modules["cel.cel"].compile
    assert cel.compile("1 + 2").execute() == 3
    print("ok")
    """
)


def test_cel_compiles_without_importing_the_package_shell() -> None:
    done = subprocess.run([sys.executable, "-c", _CEL_SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_building_the_services_hashes_no_password_and_opens_no_tls_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'opsrail.db'}")
    contexts: list[object] = []
    real = ssl.create_default_context

    def counted(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        contexts.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counted)
    container = build(settings, migrate=True)
    try:
        assert contexts == []  # the connectors' client sends over aiohttp and builds its TLS context when used
        assert container.sessions._decoy_hash is None
        with pytest.raises(Unauthenticated):
            container.sessions.sign_in_password("nobody", "a wrong password")
        assert container.sessions._decoy_hash is not None  # made for the first unknown name, then kept
    finally:
        container.close()


def test_the_server_makes_the_decoy_hash_as_it_starts(tmp_path: Path) -> None:
    from opsrail.api import create_app

    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'opsrail.db'}", worker=False)
    container = build(settings, migrate=True)
    app = create_app(container)

    async def start_and_stop() -> None:
        async with app.router.lifespan_context(app):
            await asyncio.sleep(0)  # started; leaving the block stops the app, which waits for the background hash

    try:
        assert container.sessions._decoy_hash is None
        # on a thread of its own: a browser test before this one may leave an event loop running on this one
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, start_and_stop()).result(timeout=60)
        assert container.sessions._decoy_hash is not None
    finally:
        container.close()


_CLI_SCRIPT = textwrap.dedent(
    """
    import sys
    from typer.testing import CliRunner
    from opsrail.cli import app

    runner = CliRunner()
    for args in (["--help"], ["runs", "list", "--help"], ["runs", "list", "--limit", "x"], ["version"]):
        result = runner.invoke(app, args)
        assert result.exit_code in (0, 2), (args, result.output)
    heavy = sorted(m for m in ("sqlalchemy", "opsrail.wiring", "opsrail.services", "opsrail.storage", "cedarpy",
                               "opsrail.simulate", "opsrail.playbooks", "fastapi") if m in sys.modules)
    assert not heavy, heavy
    print("ok")
    """
)


def test_help_and_argument_errors_do_not_load_the_storage_stack() -> None:
    done = subprocess.run([sys.executable, "-c", _CLI_SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_database_error_in_a_command_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from opsrail.cli import app

    # A directory where the SQLite file should be: the driver cannot open it.
    (tmp_path / "db").mkdir()
    monkeypatch.setenv("OPSRAIL_DATABASE_URL", f"sqlite:///{tmp_path / 'db'}")
    monkeypatch.setenv("OPSRAIL_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["runs", "list"])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "the database is not available" in result.output, result.output
    assert "Traceback" not in result.output
