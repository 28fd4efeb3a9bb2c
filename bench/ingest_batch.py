"""I2: NDJSON batch ingest over HTTP, durable and deduplicated, in events per second.

Sends batches of canonical incident events (each about 330 bytes; a batch stays under the 1 MiB body
limit) from two client threads to one `opsrail up`, and counts what the server accepted.
Usage: python -m bench.ingest_batch [--runs 5] [--batches 60] [--batch-size 2500]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid

import httpx
import orjson

from bench._servers import median, opsrail_server, scratch_database


def make_batch(run: str, start: int, size: int) -> bytes:
    lines = []
    for n in range(start, start + size):
        event = {
            "specversion": "1.0",
            "id": f"{run}-{n}",
            "source": "bench/i2",
            "type": "com.opsrail.incident.opened",
            "time": "2026-01-05T09:00:00Z",
            "data": {
                "id": f"bench:INC-{run}-{n}",
                "title": f"Checkout errors for tenant {n % 500}",
                "severity": 1 + n % 4,
                "status": "open",
                "service": "checkout",
                "segment": {"region": ("EMEA", "AMER", "APAC")[n % 3], "tier": "enterprise"},
            },
        }
        lines.append(orjson.dumps(event))
    return b"\n".join(lines)


def one_run(url: str, token: str, batches: int, size: int, senders: int) -> tuple[float, int]:
    run = uuid.uuid4().hex[:10]
    bodies = [make_batch(run, i * size, size) for i in range(batches)]
    accepted = 0
    lock = threading.Lock()

    def send(mine: list[bytes]) -> None:
        nonlocal accepted
        with httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
            timeout=60,
        ) as client:
            for body in mine:
                response = client.post("/v1/events:batch", content=body)
                response.raise_for_status()
                with lock:
                    accepted += response.json()["accepted"]

    threads = [threading.Thread(target=send, args=(bodies[i::senders],)) for i in range(senders)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    return accepted / elapsed, accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=2500)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL; default is a SQLite file")
    parser.add_argument("--workers", type=int, default=1, help="opsrail up --workers")
    args = parser.parse_args()
    store = "postgresql" if args.database_url else "sqlite-wal-normal"
    with (
        scratch_database(args.database_url) as database_url,
        opsrail_server(database_url, workers=args.workers) as server,
    ):
        one_run(server.url, server.token, 4, args.batch_size, args.senders)  # warm-up
        results = [
            one_run(server.url, server.token, args.batches, args.batch_size, args.senders) for _ in range(args.runs)
        ]
    expected = args.batches * args.batch_size
    print(
        json.dumps(
            {
                "bench": "I2",
                "metric": "events_per_s",
                "store": store,
                "value": round(median([r[0] for r in results]), 1),
                "workers": args.workers,
                "runs": args.runs,
                "events_per_run": expected,
                "batch_size": args.batch_size,
                "all_accepted": all(r[1] == expected for r in results),
                "peer": None,
                "peer_value": None,
                "ratio": None,
            }
        )
    )


if __name__ == "__main__":
    main()
