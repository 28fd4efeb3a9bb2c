"""How long a worker's batch save takes: ``save_runs`` of N three-step runs, each with two changed steps and two
log entries (a step that succeeded with an output, one now waiting on a timer with an SLA clock).

The runs are created once; each round loads them, advances them and saves them in one call, timed alone. Prints
the median over the rounds in milliseconds. SQLite by default (a new file), or a new database on the server given.
Usage: python -m bench.run_saves [--runs 500] [--rounds 20] [--database-url postgresql://…]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench._servers import median, scratch_database
from opsrail.engine import Log, RunState, StepState
from opsrail.storage import SqlRunStore, create_engine, upgrade
from opsrail.wiring import RandomIds

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _run(run_id: str) -> RunState:
    steps = {name: StepState(id=name) for name in ("a", "b", "c")}
    return RunState(id=run_id, playbook_id="p", version=1, status="running", input={}, steps=steps, created_at=AT)


def _advance(run: RunState, n: int) -> list[Any]:
    later = AT + timedelta(seconds=n + 1)
    a, b = run.steps["a"], run.steps["b"]
    a.status, a.attempt, a.started_at, a.finished_at = "succeeded", 1, AT, later
    a.output = {"n": n, "ticket": f"INC-{n}", "fields": {"severity": 1, "team": "platform"}}
    b.status, b.waiting_for, b.due_at = "waiting", "timer", later + timedelta(hours=1)
    b.sla_warn_at, b.sla_due_at, b.sla_state = later, later + timedelta(hours=2), "running"
    a.changed = b.changed = True
    return [
        Log(run.id, "a", "step_succeeded", later, {"actor": "worker-1"}),
        Log(run.id, "b", "step_waiting", later, {"reason": "timer"}),
    ]


def measure(url: str, count: int, rounds: int) -> float:
    engine = create_engine(url)
    try:
        upgrade(engine)
        store = SqlRunStore(engine, RandomIds())
        ids = [f"run-{n}" for n in range(count)]
        store.create_runs([(_run(i), []) for i in ids])
        seconds = []
        for _ in range(rounds):
            loaded = store.load_runs(ids)
            changes = []
            for n, run_id in enumerate(ids):
                run, version = loaded[run_id]
                changes.append((run, version, _advance(run, n)))
            started = time.perf_counter()
            conflicted = store.save_runs(changes)
            seconds.append(time.perf_counter() - started)
            assert not conflicted, conflicted
        return median(seconds) * 1000.0
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--database-url", help="PostgreSQL URL that may create databases (default: SQLite)")
    args = parser.parse_args()
    with scratch_database(args.database_url) as url, tempfile.TemporaryDirectory() as home:
        target = url or f"sqlite:///{Path(home) / 'opsrail.db'}"
        value = measure(target, args.runs, args.rounds)
    store = "postgresql" if args.database_url else "sqlite"
    print(
        json.dumps(
            {"bench": "run_saves", "metric": "save_runs_ms_median", "value": round(value, 2), "store": store}
            | {"runs": args.runs, "rounds": args.rounds}
        )
    )


if __name__ == "__main__":
    main()
