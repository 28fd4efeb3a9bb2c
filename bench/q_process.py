"""Q3-Q6: predictions over event logs (next activity, remaining time, SLA breach), train time, bpi2012 XES import.

Q3/Q4: next-activity accuracy under Tax et al. 2017 (cases in file order, first 2/3 train, prefixes 2 … n-1 of
the last third), peer: the last-activity baseline (most frequent follower in training). Q5: remaining-time MAE in
days on the same split and prefixes, peer: the training median. Q6: SLA-breach AUC on a time-ordered split (train on
the earlier 2/3 of cases by start time), target: the training median case duration unless given; peer: the
reference logistic regression of BENCHMARKS.md (0.78 time-ordered, another log), and the elapsed-time score measured
here. Every figure is chosen on training data only; the feature set each model chose on its inner split is printed
with the inner scores of every set. Usage: python -m bench.q_process [--data DIR] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench._servers import median
from opsrail.ml._eventlog import read_event_log
from opsrail.ml._next_activity import train_next_activity
from opsrail.ml._remaining_time import train_remaining_time
from opsrail.ml._sla_breach import train_sla_breach

DAY = 86_400.0


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def ratio(value: float | None, peer: float | None) -> float | None:
    return round(value / peer, 3) if value is not None and peer else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--runs", type=int, default=5, help="XES import repetitions (median)")
    args = parser.parse_args()
    helpdesk = args.data / "helpdesk" / "helpdesk_tax2017.csv.gz"
    bpi_w = args.data / "bpi2012" / "bpi_12_w_tax2017.csv.gz"
    bpi = args.data / "bpi2012" / "BPI_Challenge_2012.xes.gz"

    seconds = []
    for _ in range(args.runs):
        started = time.perf_counter()
        log = read_event_log(bpi)
        seconds.append(time.perf_counter() - started)
    emit(
        {
            "bench": "M1-import",
            "metric": "bpi2012_xes_import_seconds",
            "value": round(median(seconds), 3),
            "peer": None,
            "peer_value": None,
            "ratio": None,
            "events": log.n_events,
            "cases": len(log.cases),
            "runs": args.runs,
        }
    )

    for bench, path in (("Q3", helpdesk), ("Q4", bpi_w)):
        started = time.perf_counter()
        model = train_next_activity(path)
        took = time.perf_counter() - started
        metrics = model.metrics
        emit(
            {
                "bench": bench,
                "metric": "accuracy",
                "log": path.name,
                "value": metrics["accuracy"],
                "peer": "last-activity baseline",
                "peer_value": metrics["baseline_accuracy"],
                "ratio": ratio(metrics["accuracy"], metrics["baseline_accuracy"]),
                "macro_f1": metrics["macro_f1"],
                "n": metrics["n"],
                "inner_accuracy": metrics["inner"]["accuracy"],
                "setting": model.params["setting"],
                "feature_set": model.params["feature_set"],
                "inner_accuracy_by_feature_set": model.params["inner_accuracy_by_feature_set"],
            }
        )
        emit(
            {
                "bench": bench,
                "metric": "train_seconds",
                "log": path.name,
                "value": round(took, 1),
                "peer": None,
                "peer_value": None,
                "ratio": None,
            }
        )

    for path in (helpdesk, bpi_w):
        started = time.perf_counter()
        remaining = train_remaining_time(path)
        took = time.perf_counter() - started
        metrics = remaining.metrics
        emit(
            {
                "bench": "Q5",
                "metric": "mae_days",
                "log": path.name,
                "value": metrics["mae_days"],
                "peer": "training median",
                "peer_value": metrics["median_baseline_mae_days"],
                "ratio": ratio(metrics["mae_days"], metrics["median_baseline_mae_days"]),
                "n": metrics["n"],
                "model": remaining.params["model"],
                "inner_mae_days": metrics["inner"]["mae_days"],
                "feature_set": remaining.params["feature_set"],
                "inner_mae_days_by_choice": remaining.params["inner_mae_days_by_feature_set_and_objective"],
            }
        )
        emit(
            {
                "bench": "Q5",
                "metric": "train_seconds",
                "log": path.name,
                "value": round(took, 1),
                "peer": None,
                "peer_value": None,
                "ratio": None,
            }
        )

    for path, target in ((bpi, None), (helpdesk, 8 * DAY), (bpi_w, None)):
        started = time.perf_counter()
        breach = train_sla_breach(path, target_seconds=target)
        took = time.perf_counter() - started
        metrics = breach.metrics
        emit(
            {
                "bench": "Q6",
                "metric": "auc",
                "log": path.name,
                "value": metrics["auc"],
                "peer": "logistic regression, public ITIL log, time-ordered (BENCHMARKS.md)",
                "peer_value": 0.78,
                "ratio": ratio(metrics["auc"], 0.78),
                "elapsed_time_auc": metrics["baseline_auc"],
                "recall_at_precision_0.9": metrics["recall_at_precision_0.9"],
                "n": metrics["n"],
                "positive_share": metrics["positive_share"],
                "excluded_already_breached": metrics["excluded_already_breached"],
                "target": breach.params["target"],
                "inner_auc": metrics["inner"]["auc"],
                "feature_set": breach.params["feature_set"],
                "inner_auc_by_feature_set": breach.params["inner_auc_by_feature_set"],
            }
        )
        emit(
            {
                "bench": "Q6",
                "metric": "train_seconds",
                "log": path.name,
                "value": round(took, 1),
                "peer": None,
                "peer_value": None,
                "ratio": None,
            }
        )


if __name__ == "__main__":
    main()
