"""The E1/E2 peer: DBOS Transact running a 3-step workflow of no-op steps, on the same kind of store.

Run as a subprocess (DBOS keeps process-wide state): prints one JSON line with the best rate of a sequential loop
and of concurrent workflows started with ``DBOS.start_workflow``.
Usage: python -m bench._dbos_peer SQLITE_OR_POSTGRES_URL N
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import sqlalchemy as sa
from dbos import DBOS, DBOSConfig
from sqlalchemy import event


def main() -> None:
    url, count = sys.argv[1], int(sys.argv[2])
    config: DBOSConfig = {"name": "opsrail-bench-peer", "system_database_url": url}
    if url.startswith("sqlite"):
        # The same SQLite settings as Opsrail's store: WAL, synchronous=NORMAL, a busy timeout.
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")
            dbapi_connection.execute("PRAGMA busy_timeout=30000")
            dbapi_connection.execute("PRAGMA foreign_keys=ON")

        config["system_database_engine"] = engine
    DBOS(config=config)

    @DBOS.step()
    def noop(value: int) -> int:
        return value

    @DBOS.workflow()
    def three_steps(value: int) -> int:
        noop(value)
        noop(value + 1)
        return noop(value + 2)

    DBOS.launch()
    for i in range(20):  # warm-up
        three_steps(-i)
    start = time.perf_counter()
    for i in range(count):
        three_steps(i)
    sequential = count / (time.perf_counter() - start)
    start = time.perf_counter()
    handles = [DBOS.start_workflow(three_steps, count + i) for i in range(count)]
    for handle in handles:
        handle.get_result()
    concurrent = count / (time.perf_counter() - start)
    DBOS.destroy()
    print(json.dumps({"sequential": sequential, "concurrent": concurrent}))


if __name__ == "__main__":
    main()
