"""A real ``opsrail up`` in a subprocess, reached over real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from opsrail.governance import ROLES
from opsrail.settings import Settings
from opsrail.wiring import build


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    token: str
    reader_token: str
    env: dict[str, str]
    role_tokens: dict[str, str]
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10.0)


def start_server(home: Path, database_url: str | None, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRAIL_")}
    env["OPSRAIL_HOME"] = str(home)
    env.update(extra_env or {})
    if database_url:
        env["OPSRAIL_DATABASE_URL"] = database_url
    settings = Settings(home=home, database_url=database_url)
    container = build(settings, migrate=True)
    _, token = container.tokens.create("operator", "tests")
    _, reader = container.tokens.create("auditor", "reader")
    role_tokens = {role: container.tokens.create(role, f"{role}-token")[1] for role in ROLES}
    container.close()
    log = home / "server.log"
    with running_opsrail(env, log) as url:
        yield Server(url=url, token=token, reader_token=reader, env=env, log=log, role_tokens=role_tokens)


@contextmanager
def running_opsrail(env: dict[str, str], log: Path) -> Iterator[str]:
    """``opsrail up`` in a subprocess with ``env`` on a free port, writing to ``log``; yields its URL once ready."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "opsrail", "up", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not _ready(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"opsrail up did not become ready:\n{log.read_text()}")
        time.sleep(0.05)
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("home")
    database_url = None
    if request.param == "postgresql":
        database_url = request.getfixturevalue("empty_postgres")()
    yield from start_server(home, database_url)
