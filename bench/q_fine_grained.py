"""A log unlike the benchmark files: fine-grained activities, a spreadsheet's CSV, other column names.

Writes BPI 2012 (`BPI_Challenge_2012.xes.gz`) as a Windows-1252, semicolon-separated CSV whose activity joins the
activity, its lifecycle transition and its resource (about 1,200 distinct next activities), with German column
names, then trains next activity and remaining time on it (``tax2017`` split) and prints their figures and times.
Usage: python -m bench.q_fine_grained [--data PATH] [--out DIR] [--task next-activity|remaining-time|both]
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from opsrail.ml import read_event_log, train_next_activity, train_remaining_time

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bpi2012" / "BPI_Challenge_2012.xes.gz"
COLUMNS = {"case": "Fall Nr", "activity": "Aktivität", "timestamp": "Zeitstempel"}


def write_fine_grained(source: Path, target: Path) -> int:
    """The CSV described above; returns the number of distinct activities."""
    log = read_event_log(source)
    names = set()
    with target.open("w", newline="", encoding="cp1252") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow([COLUMNS["case"], COLUMNS["activity"], COLUMNS["timestamp"], "Ressource"])
        for case in log.cases:
            for event in case.events:
                resource = event.attributes.get("org:resource", "")
                name = f"{event.activity}·{event.attributes.get('lifecycle:transition', '')}·{resource}"
                names.add(name)
                moment = datetime.fromtimestamp(event.timestamp, UTC).strftime("%d.%m.%Y %H:%M:%S")
                writer.writerow([case.case_id, name, moment, resource])
    return len(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=None, help="folder for the CSV [a temporary one]")
    parser.add_argument("--task", choices=("next-activity", "remaining-time", "both"), default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = (args.out or Path(scratch)) / "bpi2012_fine_grained.csv"
        activities = write_fine_grained(args.data, path)
        print(json.dumps({"file": path.name, "activities": activities, "bytes": path.stat().st_size}), flush=True)
        trainers = {"next-activity": train_next_activity, "remaining-time": train_remaining_time}
        for task, train in trainers.items():
            if args.task not in (task, "both"):
                continue
            started = time.perf_counter()
            model = train(path, case=COLUMNS["case"], activity=COLUMNS["activity"], timestamp=COLUMNS["timestamp"])
            seconds = time.perf_counter() - started
            metrics = {k: v for k, v in model.metrics.items() if not isinstance(v, dict | list)}
            shown = {k: model.params[k] for k in ("model", "fallback", "classes", "feature_set") if k in model.params}
            print(json.dumps({"task": task, "seconds": round(seconds, 1), **shown, **metrics}), flush=True)


if __name__ == "__main__":
    main()
