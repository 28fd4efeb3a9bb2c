"""E3: steps per second when every action calls an operation that answers after 100 ms.

The same engine is measured with one step in flight (the peer) and with many (`OPSRAIL_WORKER_CONCURRENCY`); the
operation awaits 100 ms, as a slow vendor API would. Usage: python -m bench.engine_concurrency [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._servers import median
from opsrail.engine import CallContext
from opsrail.settings import Settings
from opsrail.wiring import build

PLAYBOOK = """
id: slow-vendor
version: 1
steps:
  - id: call
    action: bench.slow
    with: {n: "${ run.input.n }"}
"""


async def slow(params: dict[str, Any], call: CallContext) -> Any:
    await asyncio.sleep(0.1)
    return {"n": params["n"]}


def steps_per_second(count: int, concurrency: int) -> float:
    with tempfile.TemporaryDirectory(prefix="opsrail-e3-") as home:
        container = build(Settings(home=Path(home), worker_concurrency=concurrency), migrate=True)
        container.runner.operations.register("bench.slow", slow)
        path = Path(home) / "slow.yaml"
        path.write_text(PLAYBOOK)
        container.automation.publish(path)
        container.runner.start_runs("slow-vendor", [{"n": n} for n in range(count)])
        start = time.perf_counter()

        async def drain() -> None:
            while await container.runner.tick():
                pass

        asyncio.run(drain())
        elapsed = time.perf_counter() - start
        done = len(container.automation.runs(status="succeeded", limit=count + 1))
        container.close()
        if done != count:
            raise RuntimeError(f"only {done} of {count} runs succeeded")
        return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=1000)
    args = parser.parse_args()
    many = [steps_per_second(args.count, args.concurrency) for _ in range(args.runs)]
    one = [steps_per_second(30, 1) for _ in range(args.runs)]
    value, peer_value = median(many), median(one)
    print(
        json.dumps(
            {
                "bench": "E3",
                "metric": "steps_per_s_with_100ms_operations",
                "store": "sqlite-wal-normal",
                "value": round(value, 1),
                "concurrency": args.concurrency,
                "peer": "the same engine, 1 step in flight",
                "peer_value": round(peer_value, 2),
                "ratio": round(value / peer_value, 1),
                "runs": args.runs,
                "count": args.count,
            }
        )
    )


if __name__ == "__main__":
    main()
