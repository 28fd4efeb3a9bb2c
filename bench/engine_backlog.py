"""Claiming with a large backlog: 100,000 runs waiting (timers a day away) in the store, then a burst of ready work.

Reports how long an idle worker tick takes (claim + timers + events with nothing due), how fast a burst of 1,000
new runs completes beside the backlog, and the worker process's resident memory.
Usage: python -m bench.engine_backlog [--waiting 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path

from opsrail.settings import Settings
from opsrail.wiring import build

WAITING = """
id: waiting
version: 1
steps:
  - id: later
    wait: {duration: P1D}
"""
BURST = """
id: burst
version: 1
steps:
  - id: one
    action: core.set
  - id: two
    needs: [one]
    action: core.set
"""


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--waiting", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsrail-backlog-") as home:
        container = build(Settings(home=Path(home)), migrate=True)
        for name, text in (("waiting", WAITING), ("burst", BURST)):
            path = Path(home) / f"{name}.yaml"
            path.write_text(text)
            container.automation.publish(path)
        runner = container.runner
        started = time.perf_counter()
        for first in range(0, args.waiting, 1000):
            runner.start_runs("waiting", [{} for _ in range(min(1000, args.waiting - first))])
        filled = time.perf_counter() - started

        async def idle_ticks() -> float:
            times = []
            for _ in range(20):
                t = time.perf_counter()
                await runner.tick()
                times.append(time.perf_counter() - t)
            return sorted(times)[len(times) // 2]

        idle = asyncio.run(idle_ticks())
        runner.start_runs("burst", [{} for _ in range(1000)])
        t = time.perf_counter()

        async def drain() -> None:
            while await runner.tick():
                pass

        asyncio.run(drain())
        burst = 1000 / (time.perf_counter() - t)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            json.dumps(
                {
                    "bench": "backlog",
                    "waiting_runs": args.waiting,
                    "fill_seconds": round(filled, 1),
                    "idle_tick_ms": round(idle * 1000, 2),
                    "burst_runs_per_s_beside_backlog": round(burst, 1),
                    "rss_mb": round(rss_mb(), 1),
                    "peak_rss_mb": round(peak, 1),
                    "peer": None,
                    "peer_value": None,
                    "ratio": None,
                }
            )
        )
        container.close()


if __name__ == "__main__":
    main()
