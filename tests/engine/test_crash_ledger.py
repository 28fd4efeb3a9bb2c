"""Crash safety of a step's own writes: a worker running ledger steps is killed with SIGKILL again and again.

A step's ledger change, its audit entries and its result commit in one transaction, so after the restarts every
run completes, every ledger record exists once per step (one idempotent request, one change event, one audit
entry), and the audit chain verifies.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from opsrail.settings import Settings
from opsrail.wiring import Container, build
from tests.engine.crash_harness import finish, kill_while_open, worker_env

RUNS = 200
PLAYBOOK = """
id: ledgered
version: 1
steps:
  - id: credit
    action: ledger.create_credit_memo
    with: {account_id: "acct-${ run.input.n }", amount: 10.0, currency: EUR, reason: "crash test"}
  - id: project
    action: ledger.create_project
    with: {account_id: "acct-${ run.input.n }", name: "follow-up ${ run.input.n }"}
  - id: done
    needs: [credit, project]
    action: core.set
    with: {credit: "${ steps.credit.output.id }"}
"""


@pytest.mark.slow
def test_sigkill_loses_no_ledger_change_and_repeats_none(tmp_path: Path) -> None:
    env = worker_env(tmp_path)
    container = build(Settings(home=tmp_path), migrate=True)
    (tmp_path / "ledgered.yaml").write_text(PLAYBOOK)
    container.automation.publish(tmp_path / "ledgered.yaml")
    run_ids = [container.automation.start("ledgered", {"n": n}) for n in range(RUNS)]

    deadline = time.monotonic() + 200
    rng = random.Random(20261130)
    # Ledger steps are quick: once a worker has started it finishes everything within a second or so. So each
    # worker is killed a random moment after its first ledger change lands, not a fixed time after its start
    # (which depends on how fast the machine loads the program).
    kills = kill_while_open(
        container,
        env,
        runs=RUNS,
        most=12,
        deadline=deadline,
        rng=rng,
        progress=lambda: _requests(container),
        after=(0.0, 0.1),
    )
    finish(container, env, runs=RUNS, deadline=deadline)

    statuses = {r["id"]: r["status"] for r in container.automation.runs(limit=RUNS)}
    with container.engine.connect() as conn:
        keys = [row[0] for row in conn.execute(sa.text("SELECT key FROM ledger_requests"))]
        records = Counter(row[0] for row in conn.execute(sa.text("SELECT collection FROM ledger_records")))
        changes = conn.execute(sa.text("SELECT count(*) FROM events WHERE source = 'opsrail/ledger'")).scalar()
    created = Counter(e["action"] for e in container.audit.export() if e["action"].startswith("ledger."))
    report = container.audit.verify()
    container.close()

    assert kills >= 3, kills
    assert set(statuses) == set(run_ids) and set(statuses.values()) == {"succeeded"}
    assert len(keys) == len(set(keys)) == 2 * RUNS
    assert records == {"credit-memos": RUNS, "projects": RUNS}
    assert changes == 2 * RUNS
    assert created == {"ledger.credit_memo.created": RUNS, "ledger.project.created": RUNS}
    assert report.ok


def _requests(container: Container) -> int:
    """Ledger requests committed so far: one per ledger step that has run."""
    with container.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM ledger_requests")).scalar() or 0)
