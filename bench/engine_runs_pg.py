"""E2: completed 3-step runs per second on PostgreSQL with two worker processes, against DBOS with two processes.

Both sides get a fresh database on the same server and are timed after start-up. Ours: two `opsrail worker`
processes are started and waited for, then runs are started in bulk and the workers drain them; the window runs
from the first start to the last run's end (the workers' start-up is reported beside it). DBOS: two processes
each run half the workflows (the better of sequential and concurrent
starts each), and their rates are added. Usage: python -m bench.engine_runs_pg --database-url URL [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench._servers import ROOT, median, scratch_database
from bench.engine_runs import PLAYBOOK
from opsrail.settings import Settings
from opsrail.wiring import build


def _ready(worker: subprocess.Popen[str]) -> None:
    """Wait for the worker's start-up line (it has imported, connected and begun its loop)."""
    assert worker.stderr is not None
    for line in worker.stderr:
        if "running" in line:
            return
    raise RuntimeError(f"worker exited with {worker.wait()} before it was ready")


def ours(admin_url: str, count: int) -> tuple[float, float]:
    """Runs per second from the first run started to the last one finished, with both workers already up (as the
    peer is measured after `DBOS.launch()`), and the workers' start-up time in seconds."""
    with scratch_database(admin_url) as url:
        assert url is not None
        home = Path(f"/tmp/opsrail-e2-{os.getpid()}")
        home.mkdir(exist_ok=True)
        container = build(Settings(home=home, database_url=url), migrate=True)
        path = home / "three.yaml"
        path.write_text(PLAYBOOK)
        container.automation.publish(path)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRAIL_")}
        env.update(OPSRAIL_HOME=str(home), OPSRAIL_DATABASE_URL=url, OPSRAIL_LOG_LEVEL="error")
        launched = time.perf_counter()
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "opsrail", "worker"],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        try:
            for worker in workers:
                _ready(worker)
            startup = time.perf_counter() - launched
            start = time.perf_counter()
            # Started in bulk, 500 a call, while the workers already drain the first ones.
            for first in range(0, count, 500):
                container.runner.start_runs("three-steps", [{"n": n} for n in range(first, min(count, first + 500))])
            while container.automation.runs(status="running", limit=1):
                time.sleep(0.02)
            elapsed = time.perf_counter() - start
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(10)
        done = len(container.automation.runs(status="succeeded", limit=count + 1))
        container.close()
        if done != count:
            raise RuntimeError(f"only {done} of {count} runs succeeded")
        return count / elapsed, startup


def peer(admin_url: str, count: int) -> float:
    with scratch_database(admin_url) as url:
        assert url is not None
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "bench._dbos_peer", plain, str(count // 2)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for _ in range(2)
        ]
        total = 0.0
        for process in processes:
            out, _ = process.communicate(timeout=600)
            rates = json.loads(out.strip().splitlines()[-1])
            total += max(rates["sequential"], rates["concurrent"])
        return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="PostgreSQL URL that may create databases")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--peer-count", type=int, default=1000)
    args = parser.parse_args()
    measured = [ours(args.database_url, args.count) for _ in range(args.runs)]
    mine = [rate for rate, _ in measured]
    theirs = [peer(args.database_url, args.peer_count) for _ in range(args.runs)]
    value, peer_value = median(mine), median(theirs)
    print(
        json.dumps(
            {
                "bench": "E2",
                "metric": "completed_3_step_runs_per_s",
                "store": "postgresql",
                "workers": 2,
                "value": round(value, 1),
                "peer": "DBOS Transact 3.4, 2 processes, same PostgreSQL",
                "peer_value": round(peer_value, 1),
                "ratio": round(value / peer_value, 2),
                "runs": args.runs,
                "count": args.count,
                "per_run": [round(v, 1) for v in mine],
                "peer_per_run": [round(v, 1) for v in theirs],
                "worker_startup_s": round(median([s for _, s in measured]), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
