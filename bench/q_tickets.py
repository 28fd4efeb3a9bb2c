"""Q1 (ticket topic accuracy, macro-F1, train time), Q2 (precision and coverage at the stored thresholds), D2 (latency).

Q1/Q2: 5-fold stratified cross-validation on the ticket file, seed fixed. Each fold trains the classifier on its
training part only (which picks its settings and per-class thresholds on inner folds of that part) and is scored on
the held-out part; figures are the mean over folds, with the per-fold values. Train time is also measured for one
model on the whole file. D2: that model answers 1,000 tickets one call at a time; p50/p99 in milliseconds.
Usage: python -m bench.q_tickets [--data PATH] [--text Document] [--label Topic_group] [--folds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold

from opsrail.ml._labelled_csv import read_labelled_csv
from opsrail.ml._metrics import summary
from opsrail.ml._text import fit_text_classifier, train_text_classifier

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "it_tickets" / "tickets_train.csv.gz"


def emit(bench: str, metric: str, value: float, **extra: object) -> None:
    print(json.dumps({"bench": bench, "metric": metric, "value": round(value, 4), **extra}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--text", default="Document")
    parser.add_argument("--label", default="Topic_group")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target-precision", type=float, default=0.95)
    args = parser.parse_args()
    texts, labels = read_labelled_csv(args.data, text=args.text, label=args.label)
    y = np.array(labels, dtype=object)
    splitter = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    per_fold: dict[str, list[float]] = {}
    for train, held in splitter.split(np.zeros(len(y)), y):
        started = time.perf_counter()
        model = fit_text_classifier(
            [texts[i] for i in train], list(y[train]), target_precision=args.target_precision, seed=args.seed
        )
        seconds = time.perf_counter() - started
        index = {name: k for k, name in enumerate(model.classes)}
        truth = np.array([index.get(label, -1) for label in y[held]])
        probs = model.probabilities([texts[i] for i in held])
        figures = summary(truth, probs, model.classes, model._thresholds, target_precision=args.target_precision)
        for key in ("accuracy", "macro_f1", "brier", "precision_at_thresholds", "coverage_at_thresholds"):
            per_fold.setdefault(key, []).append(float(figures[key]))
        per_fold.setdefault("coverage_at_precision_0.95", []).append(float(figures["coverage_at_precision_0.95"]))
        per_fold.setdefault("train_seconds_fold", []).append(seconds)
    common = {"folds": args.folds, "seed": args.seed, "rows": len(y), "data": args.data.name}
    for key in ("accuracy", "macro_f1"):
        emit("Q1", key, statistics.mean(per_fold[key]), per_fold=[round(v, 4) for v in per_fold[key]], **common)
    emit("Q1", "train_seconds_per_fold_median", statistics.median(per_fold["train_seconds_fold"]), **common)
    for key in ("precision_at_thresholds", "coverage_at_thresholds", "coverage_at_precision_0.95", "brier"):
        emit(
            "Q2",
            key,
            statistics.mean(per_fold[key]),
            per_fold=[round(v, 4) for v in per_fold[key]],
            target_precision=args.target_precision,
            **common,
        )

    started = time.perf_counter()
    model = train_text_classifier(args.data, text=args.text, label=args.label, seed=args.seed)
    emit("Q1", "train_seconds_full_file", time.perf_counter() - started, rows=len(y), data=args.data.name)
    sample = texts[:1000]
    for text in sample[:50]:
        model.predict({"text": text})  # warm-up
    latencies = []
    for text in sample:
        t0 = time.perf_counter()
        model.predict({"text": text})
        latencies.append((time.perf_counter() - t0) * 1000)
    emit("D2", "predict_latency_p50_ms", float(np.percentile(latencies, 50)), tickets=len(sample))
    emit("D2", "predict_latency_p99_ms", float(np.percentile(latencies, 99)), tickets=len(sample))


if __name__ == "__main__":
    main()
