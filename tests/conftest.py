"""Fixtures: every storage-backed test runs on a real SQLite file and on a real PostgreSQL server."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from opsrail.settings import Settings
from opsrail.storage import create_engine, metadata, upgrade
from opsrail.wiring import Container, build
from tests.support import FakeClock, SequentialIds, add_staff

PG_URL_VARIABLE = "OPSRAIL_TEST_PG_URL"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated once, dropped at the end."""
    admin = os.environ.get(PG_URL_VARIABLE)
    if not admin:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_URL_VARIABLE} is not set; run the suite with script/test")
        pytest.skip(f"PostgreSQL tests need {PG_URL_VARIABLE} (script/test provides a server)")
    name = f"opsrail_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = sa.engine.make_url(admin).set(drivername="postgresql+psycopg", database=name)
    url = base.render_as_string(hide_password=False)
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _truncate(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        names = ", ".join(t.name for t in metadata.sorted_tables)
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(scope="session")
def empty_postgres(postgres_url: str) -> Callable[[], str]:
    """The session's PostgreSQL database emptied, for each test or server that starts on it: one test's leftovers
    (a run, a tampered audit entry) must not decide another's outcome, whatever order they run in."""

    def emptied() -> str:
        _truncate(postgres_url)
        return postgres_url

    return emptied


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'opsrail.db'}"
    emptied: Callable[[], str] = request.getfixturevalue("empty_postgres")
    return emptied()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def container(database_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Container]:
    settings = Settings(home=tmp_path, database_url=database_url)
    built = build(settings, migrate=True, clock=clock, ids=SequentialIds())
    add_staff(built)
    yield built
    built.close()


@pytest.fixture
def engine(container: Container) -> sa.Engine:
    return container.engine
