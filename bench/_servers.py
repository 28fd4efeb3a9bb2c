"""Starting servers for benchmarks: `opsrail up` and peers, each in its own process, on loopback."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import sqlalchemy as sa

from opsrail.settings import Settings
from opsrail.wiring import build

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Running:
    url: str
    pid: int
    token: str = ""
    home: Path | None = None

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def _wait(url: str, process: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not start")


@contextmanager
def scratch_database(admin_url: str | None) -> Iterator[str | None]:
    """A new PostgreSQL database for one benchmark (dropped afterwards), from a URL that may create databases."""
    if not admin_url:
        yield None
        return
    name = f"opsrail_bench_{os.getpid()}"
    plain = sa.engine.make_url(admin_url).set(drivername="postgresql")
    with psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield plain.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(plain.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def opsrail_server(database_url: str | None = None, synchronous: str = "NORMAL", workers: int = 1) -> Iterator[Running]:
    with tempfile.TemporaryDirectory(prefix="opsrail-bench-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRAIL_")}
        env.update(OPSRAIL_HOME=home, OPSRAIL_SQLITE_SYNCHRONOUS=synchronous, OPSRAIL_LOG_LEVEL="warning")
        if database_url:
            env["OPSRAIL_DATABASE_URL"] = database_url
        container = build(
            Settings(home=Path(home), database_url=database_url, sqlite_synchronous=synchronous), migrate=True
        )
        _, token = container.tokens.create("operator", "bench")
        container.close()
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "opsrail", "up", "--port", str(port), "--workers", str(workers)], env=env, cwd=ROOT
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait(url, process, "/readyz")
            yield Running(url=url, pid=process.pid, token=token, home=Path(home))
        finally:
            process.terminate()
            process.wait(10)


@contextmanager
def bare_server() -> Iterator[Running]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.bare_app:app",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--no-server-header",
    ]
    process = subprocess.Popen(command, cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait(url, process, "/docs")
        yield Running(url=url, pid=process.pid)
    finally:
        process.terminate()
        process.wait(10)


def median(values: list[float]) -> float:
    return float(statistics.median(values))
