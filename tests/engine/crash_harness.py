"""What the crash tests share: worker processes started with `opsrail worker`, killed with SIGKILL again and again
while runs are open, then one last worker left alone to finish."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from opsrail.wiring import Container

ROOT = Path(__file__).resolve().parents[2]


def worker_env(home: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its OPSRAIL_* settings; a short lease, 8 steps at once, and ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRAIL_")}
    env.update(
        OPSRAIL_HOME=str(home),
        OPSRAIL_LEASE_SECONDS="1",
        OPSRAIL_WORKER_CONCURRENCY="8",
        OPSRAIL_LOG_LEVEL="error",
        PYTHONPATH=str(ROOT),
        **settings,
    )
    return env


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "opsrail", "worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_while_open(
    container: Container,
    env: dict[str, str],
    *,
    runs: int,
    most: int,
    deadline: float,
    rng: random.Random,
    progress: Callable[[], int] | None = None,
    after: tuple[float, float] = (0.0, 0.5),
) -> int:
    """Start a worker and SIGKILL it at a random moment, until no run is open or after ``most`` kills.

    With ``progress`` (a count of effects landed so far) the worker is killed a random ``after`` seconds once it has
    moved: start-up takes a second or more, longer on a busy machine. Without, ``after`` counts from its start.
    Returns the number of kills.
    """
    kills = 0
    while time.monotonic() < deadline and kills < most:
        if not container.automation.runs(status="running", limit=runs):
            break
        before = progress() if progress is not None else 0
        worker = start_worker(env)
        started = time.monotonic()
        while progress is not None and progress() == before and worker.poll() is None:
            if time.monotonic() - started > 30:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(*after))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        kills += 1
    return kills


def finish(container: Container, env: dict[str, str], *, runs: int, deadline: float) -> None:
    """A last worker, left alone, finishes what the killed ones had in hand (after their leases expire)."""
    worker = start_worker(env)
    try:
        while time.monotonic() < deadline and container.automation.runs(status="running", limit=runs):
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(10)
