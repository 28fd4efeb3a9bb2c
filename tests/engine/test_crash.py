"""Crash safety with real processes: a worker is killed with SIGKILL at random moments, again and again.

After a restart every run completes, and an effect recorded by idempotency key lands exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsrail.settings import Settings
from opsrail.wiring import build

ROOT = Path(__file__).resolve().parents[2]
RUNS = 200
PLAYBOOK = """
id: crashy
version: 1
steps:
  - id: charge
    action: test.effect
  - id: provision
    needs: [charge]
    action: test.effect
  - id: notify
    needs: [provision]
    action: core.set
    with: {done: true}
"""


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "opsrail", "worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _attempts(effects: Path) -> int:
    """How many times the plugin's operation has recorded an effect so far (0 before the first)."""
    if not effects.exists():
        return 0
    with sqlite3.connect(effects, timeout=30) as db:
        try:
            return int(db.execute("SELECT coalesce(sum(attempts), 0) FROM effects").fetchone()[0])
        except sqlite3.OperationalError:  # the table is created with the first effect
            return 0


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_and_repeats_no_effect(tmp_path: Path) -> None:
    effects = tmp_path / "effects.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRAIL_")}
    env.update(
        OPSRAIL_HOME=str(tmp_path),
        OPSRAIL_LEASE_SECONDS="1",
        OPSRAIL_WORKER_CONCURRENCY="8",
        OPSRAIL_PLUGINS='["tests.engine.crash_plugin"]',
        OPSRAIL_TEST_EFFECTS=str(effects),
        OPSRAIL_LOG_LEVEL="error",
        PYTHONPATH=str(ROOT),
    )
    settings = Settings(home=tmp_path)
    container = build(settings, migrate=True)
    (tmp_path / "crashy.yaml").write_text(PLAYBOOK)
    container.automation.publish(tmp_path / "crashy.yaml")
    run_ids = [container.automation.start("crashy", {"n": n}) for n in range(RUNS)]

    rng = random.Random(20261122)
    kills = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        open_runs = container.automation.runs(status="running", limit=RUNS)
        if not open_runs or kills >= 30:
            break
        before = _attempts(effects)
        worker = _worker(env)
        # Start-up takes a second or more, longer on a busy machine: wait until effects land, then kill at random.
        started = time.monotonic()
        while _attempts(effects) == before and worker.poll() is None and time.monotonic() - started < 30:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.5))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        kills += 1
    # A last worker, left alone, finishes whatever the killed ones had in hand (after their leases expire).
    worker = _worker(env)
    try:
        while time.monotonic() < deadline and container.automation.runs(status="running", limit=RUNS):
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(10)

    statuses = {r["id"]: r["status"] for r in container.automation.runs(limit=RUNS)}
    container.close()
    assert kills >= 5
    assert set(statuses) == set(run_ids)
    assert set(statuses.values()) == {"succeeded"}
    with sqlite3.connect(effects) as db:
        rows = db.execute("SELECT key, attempts FROM effects").fetchall()
    keys = [key for key, _ in rows]
    assert len(keys) == len(set(keys)) == 2 * RUNS  # every effect exactly once
    assert {key.rsplit(":", 1)[1] for key in keys} == {"charge", "provision"}
    repeated = sum(1 for _, attempts in rows if attempts > 1)
    print(f"{kills} kills; {repeated} effects were attempted again after a kill and landed once")
    assert repeated > 0, "no kill landed between an effect and its commit; the test proved nothing"


@pytest.mark.slow
def test_postgres_two_workers_one_killed_the_other_finishes(postgres_url: str, tmp_path: Path) -> None:
    effects = tmp_path / "effects.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRAIL_")}
    env.update(
        OPSRAIL_HOME=str(tmp_path),
        OPSRAIL_DATABASE_URL=postgres_url,
        OPSRAIL_LEASE_SECONDS="1",
        OPSRAIL_WORKER_CONCURRENCY="8",
        OPSRAIL_PLUGINS='["tests.engine.crash_plugin"]',
        OPSRAIL_TEST_EFFECTS=str(effects),
        OPSRAIL_LOG_LEVEL="error",
        PYTHONPATH=str(ROOT),
    )
    container = build(Settings(home=tmp_path, database_url=postgres_url), migrate=True)
    (tmp_path / "crashy.yaml").write_text(PLAYBOOK.replace("id: crashy", "id: crashy-pg"))
    container.automation.publish(tmp_path / "crashy.yaml")
    run_ids = [container.automation.start("crashy-pg", {"n": n}) for n in range(100)]
    doomed, survivor = _worker(env), _worker(env)
    try:
        time.sleep(2.0)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and container.automation.runs(status="running", playbook_id="crashy-pg"):
            time.sleep(0.2)
    finally:
        for worker in (doomed, survivor):
            if worker.poll() is None:
                worker.terminate()
                worker.wait(10)
    statuses = {r["id"]: r["status"] for r in container.automation.runs(playbook_id="crashy-pg", limit=200)}
    container.close()
    assert set(statuses) == set(run_ids)
    assert set(statuses.values()) == {"succeeded"}
    with sqlite3.connect(effects) as db:
        keys = [key for (key,) in db.execute("SELECT key FROM effects")]
    assert len(keys) == len(set(keys)) == 200
