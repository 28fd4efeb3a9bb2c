"""C1: the console's list pages with 100,000 runs in the store.

Seeds a store with ``--runs`` runs over five playbooks, three regions and 2,000 accounts (one step each with an
SLA clock, a twentieth of them breached) plus open approval tasks, starts ``opsrail up`` on it (worker off, so the
figures are the pages alone), signs in over HTTP and times each list page ``--count`` times: the whole run list,
each filter, the twentieth page of the list (keyset cursor), the inbox, decisions and events. The time is from
request to the last byte over loopback, so it bounds the server's render time from above.

Usage: python -m bench.console_pages [--runs 100000] [--count 50] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench._servers import _wait, free_port, scratch_database
from opsrail.settings import Settings
from opsrail.wiring import build

PLAYBOOKS = ("sev1-escalation", "enterprise-onboarding", "quote-discount", "invoice-exception", "sev1-credit")
REGIONS = ("EU", "US", "APAC")
STATUSES = ("succeeded", "succeeded", "succeeded", "running", "failed", "cancelled")
PASSWORD = "benchmark password"


def seed(url: str | None, home: Path, count: int) -> None:
    container = build(Settings(home=home, database_url=url), migrate=True)
    container.directory.put_user("fiona", ["finance_controller", "operator"], "bench")
    container.sessions.set_password("fiona", PASSWORD, "bench")
    metadata = sa.MetaData()
    warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
    runs = sa.Table("runs", metadata, autoload_with=container.engine)
    steps = sa.Table("run_steps", metadata, autoload_with=container.engine)
    tasks = sa.Table("tasks", metadata, autoload_with=container.engine)
    start = datetime.now(UTC) - timedelta(days=30)
    batch = 5000
    with container.engine.begin() as conn:
        for offset in range(0, count, batch):
            run_rows, step_rows = [], []
            for i in range(offset, min(offset + batch, count)):
                at = start + timedelta(seconds=i * 25)
                run_id = f"run_{i:012d}"
                run_rows.append(
                    {
                        "id": run_id,
                        "playbook_id": PLAYBOOKS[i % 5],
                        "version": 1,
                        "status": STATUSES[i % 6],
                        "input": {"account_id": f"acc-{i % 2000}", "segment": {"region": REGIONS[i % 3]}, "amount": i},
                        "created_at": at,
                        "updated_at": at,
                        "state_version": 1,
                    }
                )
                step_rows.append(
                    {
                        "run_id": run_id,
                        "step_id": "approve",
                        "status": "succeeded",
                        "attempt": 1,
                        "handler": False,
                        "sla_state": "breached" if i % 20 == 0 else "met",
                    }
                )
            conn.execute(runs.insert(), run_rows)
            conn.execute(steps.insert(), step_rows)
        conn.execute(
            tasks.insert(),
            [
                {
                    "id": f"task_{i:06d}",
                    "run_id": f"run_{count - 1 - i:012d}",
                    "step_id": "approve",
                    "kind": "approval",
                    "title": f"Approve a credit of {i * 10}",
                    "roles": ["finance_controller"],
                    "required": 1,
                    "status": "open",
                    "decisions": [],
                    "context": {},
                    "created_at": start + timedelta(minutes=i),
                    "due_at": start + timedelta(days=31, minutes=i),
                }
                for i in range(200)
            ],
        )
    container.close()


def timed(client: httpx.Client, path: str, count: int) -> dict[str, Any]:
    client.get(path)  # warm
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    samples.sort()
    return {
        "path": path,
        "p50_ms": round(statistics.median(samples), 1),
        "p99_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.99))], 1),
        "bytes": len(response.content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--database-url", default=os.environ.get("OPSRAIL_BENCH_PG_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, scratch_database(args.database_url) as url:
        home = Path(tmp)
        began = time.perf_counter()
        seed(url, home, args.runs)
        print(f"seeded {args.runs:,} runs in {time.perf_counter() - began:.1f} s", file=sys.stderr)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSRAIL_")}
        env.update({"OPSRAIL_HOME": str(home), "OPSRAIL_WORKER": "false"})
        if url:
            env["OPSRAIL_DATABASE_URL"] = url
        process = subprocess.Popen(
            [sys.executable, "-m", "opsrail", "up", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait(base, process, "/readyz")
            client = httpx.Client(base_url=base, timeout=30)
            login = client.get("/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
            client.post("/login", data={"csrf": csrf, "name": "fiona", "password": PASSWORD})
            deep = "/runs"
            for _ in range(19):
                following = re.search(r'rel="next" href="([^"]+)"', client.get(deep).text)
                assert following is not None
                deep = following.group(1).replace("&amp;", "&")
            paths = [
                "/runs",
                "/runs?status=failed",
                "/runs?playbook=quote-discount",
                "/runs?account=acc-1234",
                "/runs?region=EU",
                "/runs?sla=breached",
                "/runs?region=APAC&status=running&sla=breached",
                deep,
                "/inbox",
                "/decisions",
                "/events",
            ]
            results = [timed(client, path, args.count) for path in paths]
        finally:
            process.terminate()
            process.wait(10)
    report = {
        "runs": args.runs,
        "database": "postgresql" if url else "sqlite",
        "count": args.count,
        "pages": [{**r, "path": "/runs (page 20)" if r["path"] == deep else r["path"]} for r in results],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
