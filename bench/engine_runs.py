"""E1 (SQLite, one process) and E2 (PostgreSQL, two worker processes): completed 3-step runs per second.

Each step is a no-op action (`core.set`) and is committed before the next one can start. The peer is DBOS
Transact 3.4 (`pip install dbos==3.4.0`, only for this benchmark) running a 3-step workflow on the same store
settings, measured in the same run. Usage: python -m bench.engine_runs [--runs 5] [--count 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._servers import ROOT, median
from opsrail.settings import Settings
from opsrail.wiring import build

PLAYBOOK = """
id: three-steps
version: 1
steps:
  - id: one
    action: core.set
    with: {step: 1}
  - id: two
    needs: [one]
    action: core.set
    with: {step: 2}
  - id: three
    needs: [two]
    action: core.set
    with: {step: 3}
"""


def ours(count: int, one_by_one: bool = False) -> float:
    with tempfile.TemporaryDirectory(prefix="opsrail-e1-") as home:
        container = build(Settings(home=Path(home)), migrate=True)
        path = Path(home) / "three.yaml"
        path.write_text(PLAYBOOK)
        container.automation.publish(path)
        runner = container.runner
        start = time.perf_counter()
        if one_by_one:
            for n in range(count):
                runner.start_run("three-steps", {"n": n})
        else:
            for first in range(0, count, 500):
                runner.start_runs("three-steps", [{"n": n} for n in range(first, min(count, first + 500))])

        async def drain() -> None:
            while await runner.tick():
                pass

        asyncio.run(drain())
        elapsed = time.perf_counter() - start
        done = container.automation.runs(status="succeeded", limit=count + 1)
        container.close()
        if len(done) != count:
            raise RuntimeError(f"only {len(done)} of {count} runs succeeded")
        return count / elapsed


def peer(count: int) -> float:
    with tempfile.TemporaryDirectory(prefix="opsrail-e1-dbos-") as home:
        out = subprocess.run(
            [sys.executable, "-m", "bench._dbos_peer", f"sqlite:///{home}/dbos.db", str(count)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rates = json.loads(out.strip().splitlines()[-1])
        return float(max(rates["sequential"], rates["concurrent"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--count", type=int, default=2000, help="runs per measurement (ours)")
    parser.add_argument("--peer-count", type=int, default=500, help="workflows per measurement (DBOS)")
    args = parser.parse_args()
    ours(200)  # warm-up
    mine, single, theirs = [], [], []
    for _ in range(args.runs):
        mine.append(ours(args.count))
        single.append(ours(args.count, one_by_one=True))
        theirs.append(peer(args.peer_count))
    value, peer_value = median(mine), median(theirs)
    print(
        json.dumps(
            {
                "bench": "E1",
                "metric": "completed_3_step_runs_per_s",
                "store": "sqlite-wal-normal",
                "value": round(value, 1),
                "peer": "DBOS Transact 3.4, 3-step workflow, same SQLite settings",
                "peer_value": round(peer_value, 1),
                "ratio": round(value / peer_value, 2),
                "runs": args.runs,
                "count": args.count,
                "start": "start_runs, 500 a call",
            }
        )
    )
    print(
        json.dumps(
            {
                "bench": "E1",
                "metric": "completed_3_step_runs_per_s_started_one_by_one",
                "store": "sqlite-wal-normal",
                "value": round(median(single), 1),
                "peer": "DBOS Transact 3.4, 3-step workflow, same SQLite settings",
                "peer_value": round(peer_value, 1),
                "ratio": round(median(single) / peer_value, 2),
                "runs": args.runs,
                "count": args.count,
                "start": "start_run, one transaction per run",
            }
        )
    )


if __name__ == "__main__":
    main()
