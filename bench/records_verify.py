"""Checking decision records against the audit log: seconds for a store of many decisions.

Fills a fresh store (SQLite, or a scratch PostgreSQL database) with ``--records`` decisions of a small table made
through the decision service (each a record and a ``decision.made`` audit entry), a tenth of them overridden (a
settlement entry each), then times ``DecisionService.verify_records`` over the whole audit log, as
``opsrail decisions records verify`` runs it (the chain check it also runs is timed apart).
Usage: python -m bench.records_verify [--records 20000] [--database-url postgresql://…]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench._servers import scratch_database
from opsrail.settings import Settings
from opsrail.wiring import build

TABLE = """
name: band
version: 1
hit_policy: first
inputs:
  amount: {type: double}
outputs:
  band: {type: string}
rules:
  - id: large
    when: "amount > 5000.0"
    then: {band: "large"}
  - id: small
    when: "true"
    then: {band: "small"}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument(
        "--database-url", help="a PostgreSQL URL that may create databases (a scratch one is made); default SQLite"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsrail-records-") as folder, scratch_database(args.database_url) as url:
        home = Path(folder)
        container = build(Settings(home=home, database_url=url), migrate=True)
        (home / "band.yaml").write_text(TABLE)
        container.decisions.publish_table(home / "band.yaml", "bench")
        started = time.perf_counter()
        for number in range(args.records):
            record = container.decisions.evaluate_and_record("band", {"amount": float(number % 9000)})
            if number % 10 == 0:
                container.decisions.override(record["id"], {"band": "large"}, "known customer", "bench")
        fill_seconds = time.perf_counter() - started
        started = time.perf_counter()
        chain = container.audit.verify()
        chain_seconds = time.perf_counter() - started
        started = time.perf_counter()
        report = container.decisions.verify_records(container.audit.export())
        seconds = time.perf_counter() - started
        assert chain.ok and report["ok"] and report["checked"] == args.records, report
        container.close()
    print(
        json.dumps(
            {
                "store": "postgresql" if url else "sqlite",
                "records": args.records,
                "audit_entries": chain.checked,
                "fill_seconds": round(fill_seconds, 1),
                "chain_seconds": round(chain_seconds, 2),
                "verify_seconds": round(seconds, 2),
                "records_per_second": round(args.records / seconds),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
