"""I1: single-event HTTP ingest (durable, deduplicated) against a bare FastAPI JSON endpoint.

Both servers run `uvicorn` with the same settings (one process, uvloop, httptools, no access log); `wrk`
(Debian package `wrk`) drives them from a second process on loopback with one unique CloudEvent per request.
Prints one JSON object per figure. Usage: python -m bench.ingest_http [--runs 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import uuid

import httpx

from bench._servers import ROOT, Running, bare_server, median, opsrail_server, scratch_database

LUA = ROOT / "bench" / "lua" / "cloudevents.lua"


COMPLETED: dict[str, int] = {}


def wrk(server: Running, seconds: float, connections: int, delay_ms: float = 0.0) -> dict[str, float]:
    env = dict(os.environ, BENCH_RUN=uuid.uuid4().hex[:12], BENCH_TOKEN=server.token, BENCH_DELAY_MS=f"{delay_ms:.3f}")
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--timeout", "5s", "-s", str(LUA), server.url],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"WRK_RESULT (\{.*\})", out)
    if not match:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    result: dict[str, float] = json.loads(match.group(1))
    COMPLETED[server.url] = COMPLETED.get(server.url, 0) + int(result["requests"])
    return result


def stored_events(server: Running) -> int:
    total, before = 0, None
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as client:
        while True:
            params: dict[str, int] = {"limit": 1000}
            if before:
                params["before"] = before
            page = client.get("/v1/events", params=params).json()
            total += len(page["items"])
            before = page["next_before"]
            if not before:
                return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--database-url", default=None, help="PostgreSQL URL that may create databases; default is a SQLite file"
    )
    parser.add_argument("--synchronous", default="NORMAL", help="SQLite synchronous pragma")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is needed (apt-get install wrk)")
    store = "postgresql" if args.database_url else f"sqlite-wal-{args.synchronous.lower()}"
    with (
        scratch_database(args.database_url) as database_url,
        opsrail_server(database_url, args.synchronous) as ours,
        bare_server() as bare,
    ):
        idle_rss = ours.rss_mb()
        wrk(ours, 2, args.connections)
        wrk(bare, 2, args.connections)
        ours_runs, bare_runs = [], []
        for _ in range(args.runs):
            ours_runs.append(wrk(ours, args.seconds, args.connections))
            bare_runs.append(wrk(bare, args.seconds, args.connections))
        ours_rps = median([r["rps"] for r in ours_runs])
        bare_rps = median([r["rps"] for r in bare_runs])
        errors = sum(r["errors"] for r in ours_runs)
        # Half load: a closed loop of 8 connections, each pausing so that together they offer half the rate.
        target = ours_rps / 2
        conns = 8
        delay = conns * 1000 / target
        for _ in range(3):  # calibrate the pause so the closed loop offers the target rate
            probe = wrk(ours, 2, conns, delay)
            delay = max(0.0, delay * probe["rps"] / target)
        half_runs = [wrk(ours, args.seconds, conns, delay) for _ in range(args.runs)]
        loaded_rss = ours.rss_mb()
        stored = stored_events(ours)
    figures = [
        {
            "bench": "I1",
            "metric": "events_per_s",
            "store": store,
            "value": round(ours_rps, 1),
            "peer": "bare FastAPI JSON endpoint",
            "peer_value": round(bare_rps, 1),
            "ratio": round(ours_rps / bare_rps, 3),
            "runs": args.runs,
            "seconds": args.seconds,
            "connections": args.connections,
            "errors": errors,
        },
        {
            "bench": "I1",
            "metric": "p99_ms_at_half_load",
            "store": store,
            "value": round(median([r["p99_ms"] for r in half_runs]), 2),
            "offered_rps": round(median([r["rps"] for r in half_runs]), 1),
            "target_rps": round(target, 1),
            "p50_ms": round(median([r["p50_ms"] for r in half_runs]), 2),
            "peer": None,
            "peer_value": None,
            "ratio": None,
        },
        {
            "bench": "I1",
            "metric": "p99_ms_at_full_load",
            "store": store,
            "value": round(median([r["p99_ms"] for r in ours_runs]), 2),
            "peer": "bare FastAPI JSON endpoint",
            "peer_value": round(median([r["p99_ms"] for r in bare_runs]), 2),
            "ratio": None,
        },
        {
            "bench": "I1",
            "metric": "idle_rss_mb",
            "value": round(idle_rss, 1),
            "after_load_rss_mb": round(loaded_rss, 1),
            "peer": None,
            "peer_value": None,
            "ratio": None,
        },
        {
            "bench": "I1",
            # Every request wrk saw answered was stored (a few more may have been in flight when it stopped).
            "metric": "stored_events",
            "value": stored,
            "store": store,
            "answered_requests": COMPLETED[ours.url],
            "all_stored": stored >= COMPLETED[ours.url],
            "peer": None,
            "peer_value": None,
            "ratio": None,
        },
    ]
    for figure in figures:
        print(json.dumps(figure))


if __name__ == "__main__":
    main()
