"""Crash safety with real processes: a worker is killed with SIGKILL at random moments, again and again.

After a restart every run completes, and an effect recorded by idempotency key lands exactly once.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from opsrail.settings import Settings
from opsrail.wiring import build
from tests.engine.crash_harness import finish, kill_while_open, start_worker, worker_env

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
    env = worker_env(tmp_path, OPSRAIL_PLUGINS='["tests.engine.crash_plugin"]', OPSRAIL_TEST_EFFECTS=str(effects))
    settings = Settings(home=tmp_path)
    container = build(settings, migrate=True)
    (tmp_path / "crashy.yaml").write_text(PLAYBOOK)
    container.automation.publish(tmp_path / "crashy.yaml")
    run_ids = [container.automation.start("crashy", {"n": n}) for n in range(RUNS)]

    deadline = time.monotonic() + 240
    rng = random.Random(20261122)
    kills = kill_while_open(
        container, env, runs=RUNS, most=30, deadline=deadline, rng=rng, progress=lambda: _attempts(effects)
    )
    finish(container, env, runs=RUNS, deadline=deadline)

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
def test_postgres_two_workers_one_killed_the_other_finishes(empty_postgres: Callable[[], str], tmp_path: Path) -> None:
    postgres_url = empty_postgres()
    effects = tmp_path / "effects.db"
    env = worker_env(
        tmp_path,
        OPSRAIL_DATABASE_URL=postgres_url,
        OPSRAIL_PLUGINS='["tests.engine.crash_plugin"]',
        OPSRAIL_TEST_EFFECTS=str(effects),
    )
    container = build(Settings(home=tmp_path, database_url=postgres_url), migrate=True)
    (tmp_path / "crashy.yaml").write_text(PLAYBOOK.replace("id: crashy", "id: crashy-pg"))
    container.automation.publish(tmp_path / "crashy.yaml")
    run_ids = [container.automation.start("crashy-pg", {"n": n}) for n in range(100)]
    doomed, survivor = start_worker(env), start_worker(env)
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
