"""Insights on a store of many runs: seconds for each report (process map, conformance, drift, health).

Fills a fresh SQLite store through the engine: ``--runs`` runs of a four-step playbook with a branch and a step
that runs (and fails) in a seventh of the runs, a quarter of APAC's (the inputs spread over three regions), and
``--tasks`` runs of a playbook with an approval, decided through the service (the EU's rejected more often).
Then times each report over the whole store (median of ``--repeat``), and the export of every run as an event log
in each format (once each; the file's size, and the seconds ``read_event_log`` takes to read it back); then trains a
remaining-time model on the CSV export and times scoring ``--open`` runs left waiting for an approval; last, times
retention archiving and deleting every finished run (``OPSRAIL_RETENTION='{"runs": …}'``).
Usage: python -m bench.insights [--runs 20000] [--tasks 2000] [--database-url postgresql://…]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench._servers import scratch_database
from opsrail.ml import read_event_log
from opsrail.services import RetentionService
from opsrail.settings import Settings
from opsrail.storage import SqlRetentionStore
from opsrail.wiring import Container, build

FLOW = """
id: provision
version: 1
steps:
  - id: check
    action: core.set
    with: {ok: true}
  - id: push
    needs: [check]
    action: core.fail
    when: "run.input.fails"
    on_failure: continue
  - id: fast-track
    needs: [check]
    action: core.set
    when: "run.input.n % 3 == 0"
    with: {fast: true}
  - id: welcome
    needs: [push, fast-track]
    action: core.set
    with: {done: true}
"""

APPROVAL = """
id: credit
version: 1
steps:
  - id: approve
    approval: {roles: [finance_controller]}
    on_failure: continue
  - id: book
    needs: [approve]
    action: core.set
    with: {booked: true}
"""

OPEN = """
id: credit-open
version: 1
steps:
  - id: assess
    action: core.set
    with: {ok: true}
  - id: approve
    needs: [assess]
    approval: {roles: [finance_controller]}
"""

REGIONS = ("EU", "US", "APAC")


def drain(container: Container) -> None:
    async def go() -> None:
        while await container.runner.tick():
            pass

    asyncio.run(go())


def fill(home: Path, runs: int, tasks: int, database_url: str | None = None) -> float:
    started = time.perf_counter()
    container = build(Settings(home=home, database_url=database_url), migrate=True)
    container.directory.put_user("fiona", ["finance_controller"], "bench")
    for name, text in (("flow.yaml", FLOW), ("credit.yaml", APPROVAL)):
        (home / name).write_text(text)
        container.automation.publish(home / name, "bench")
    for first in range(0, runs, 500):
        inputs = []
        for n in range(first, min(runs, first + 500)):
            region = REGIONS[n % 3]
            inputs.append({"n": n, "segment": {"region": region}, "fails": n % (4 if region == "APAC" else 7) == 2})
        container.runner.start_runs("provision", inputs)
        drain(container)
    for n in range(tasks):
        container.automation.start("credit", {"n": n, "segment": {"region": REGIONS[n % 3]}}, actor="ops")
    drain(container)
    for i, task in enumerate(container.automation.tasks(limit=tasks + 1)):
        region = task["context"]["run"]["input"]["segment"]["region"]
        rejected = i % (2 if region == "EU" else 8) == 0
        container.automation.decide(task["id"], approve=not rejected, by="fiona", comment="bench")
    drain(container)
    container.close()
    return time.perf_counter() - started


def timed(action: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--tasks", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--open", type=int, default=2_000, help="open runs to score with a model trained on the rest")
    parser.add_argument(
        "--database-url", help="a PostgreSQL URL that may create databases (a scratch one is made); default SQLite"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsrail-insights-") as folder, scratch_database(args.database_url) as url:
        home = Path(folder)
        fill_seconds = fill(home, args.runs, args.tasks, url)
        container = build(Settings(home=home, database_url=url))
        insights = container.insights
        reports: dict[str, Callable[[], Any]] = {
            "process": lambda: insights.process("provision", None, None),
            "conformance": lambda: insights.conformance(None, None, None),
            "drift": lambda: insights.drift("region", None, None),
            "health": lambda: insights.health(None, None),
        }
        figures: dict[str, Any] = {
            "store": "postgresql" if url else "sqlite",
            "runs": args.runs + args.tasks,
            "fill_seconds": round(fill_seconds, 1),
        }
        for name, action in reports.items():
            seconds, result = timed(action, args.repeat)
            figures[f"{name}_seconds"] = round(seconds, 3)
            if name == "process":
                figures["variants"] = result["variants"]["variants"]
            elif name == "conformance":
                figures["fitness"] = [v["fitness"] for v in result["versions"]]
            elif name == "drift":
                figures["findings"] = [
                    f"{f['kind']} {f['point']} {f['segment']} {f['measure']} {f.get('outcome')}"
                    for f in result["findings"]
                ]
            else:
                figures["health"] = [f"{f['kind']} {f['subject']}" for f in result["findings"]]
        for name in ("runs.csv.gz", "runs.xes.gz", "runs.parquet"):
            path = home / name
            written = insights.export_log(path, None, None)
            started = time.perf_counter()
            log = read_event_log(path)
            read_seconds = time.perf_counter() - started
            assert (len(log.cases), log.n_events) == (written["runs"], written["events"])
            figures[f"export_{name}"] = {
                "seconds": written["seconds"],
                "runs": written["runs"],
                "events": written["events"],
                "megabytes": round(written["bytes"] / 1e6, 2),
                "read_back_seconds": round(read_seconds, 2),
            }
        figures["at_risk"] = at_risk(home, container, args.open)
        figures["retention"] = retention(home, container)
        container.close()
    print(json.dumps(figures, indent=2))


def at_risk(home: Path, container: Container, open_runs: int) -> dict[str, Any]:
    """Train a remaining-time model on the export of the finished runs, leave ``open_runs`` runs waiting for an
    approval, and time scoring them (``opsrail insights at-risk``)."""
    started = time.perf_counter()
    trained = container.decisions.train_model("remaining-time", home / "runs.csv.gz", {}, name="run-time")
    train_seconds = time.perf_counter() - started
    (home / "open.yaml").write_text(OPEN)
    container.automation.publish(home / "open.yaml", "bench")
    for first in range(0, open_runs, 500):
        container.runner.start_runs("credit-open", [{"n": n} for n in range(first, min(open_runs, first + 500))])
        drain(container)
    seconds, report = timed(lambda: container.insights.at_risk("run-time", limit=20), 3)
    return {
        "train_seconds": round(train_seconds, 1),
        "train_cases": trained["metrics"].get("train_cases"),
        "open_runs": report["open_runs"],
        "scored": report["scored"],
        "seconds": round(seconds, 2),
        "runs_per_second": round(report["scored"] / seconds),
    }


def retention(home: Path, container: Container) -> dict[str, Any]:
    """Archive and delete every finished run (a retention period of nothing), as ``opsrail retention run`` does."""
    folder = home / "archive"
    folder.mkdir()
    service = RetentionService(
        SqlRetentionStore(container.engine), container.retention.clock, {"runs": timedelta(0)}, archive_dir=folder
    )
    archive_seconds: list[float] = []

    def archive(path: Path, run_ids: list[str]) -> dict[str, Any]:
        began = time.perf_counter()
        written = container.insights.archive_runs(path, run_ids)
        archive_seconds.append(time.perf_counter() - began)
        return written

    service.archive_runs = archive
    started = time.perf_counter()
    chosen = len(service.store.runs_to_purge(container.retention.clock.now()))
    choose_seconds = time.perf_counter() - started
    started = time.perf_counter()
    done = service.run(actor="bench")["kinds"]["runs"]
    seconds = time.perf_counter() - started
    assert done["rows"] == chosen == done["archived_runs"] + done["runs_without_step_ends"]
    with container.engine.connect() as conn:
        runs_left = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one()
    return {
        "runs_deleted": done["rows"],
        "choose_seconds": round(choose_seconds, 2),
        "seconds": round(seconds, 2),
        "archive_seconds": round(sum(archive_seconds), 2),
        "archive_megabytes": round(done["bytes"] / 1e6, 2),
        "runs_per_second": round(done["rows"] / seconds),
        "runs_left": runs_left,
    }


if __name__ == "__main__":
    main()
