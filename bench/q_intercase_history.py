"""Q4/Q5 diagnostic: do the inter-case columns help when a scored part sees the history before it?

By default the system state of a scored part (inner validation, held-out third) is computed from that part's own
cases, so the first weeks of each part see too few open cases (a warm-up). A running system also sees every older
case. This script computes the state of inner validation from the inner-training and inner-validation cases
together, and that of the held-out third from all cases, and compares both ways with the sequence columns alone.

L1 on log hours, the three settings of the grid. Rows ``inner-*`` are scored on inner validation; rows ``test-*``
train on the whole training part and stop early on the held-out third itself, so they are an optimistic
diagnostic, not the protocol's figure (``bench.q_process`` gives that). ``--task next-activity`` scores inner
validation only, with the default feature set's first setting, as accuracy on prefixes 2 … n-1::

    python -m bench.q_intercase_history --log ../shared/data/helpdesk/helpdesk_tax2017.csv.gz
    python -m bench.q_intercase_history --task next-activity --log ../shared/data/bpi2012/bpi_12_w_tax2017.csv.gz
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from opsrail.ml import _next_activity as na
from opsrail.ml import _remaining_time as rt
from opsrail.ml._eventlog import Case
from opsrail.ml._intercase import SystemState
from opsrail.ml._prefixes import PrefixEncoder
from opsrail.ml._process import GRID, base_params, feature_views, fit_booster, load_log, make_encoder
from opsrail.ml._splits import inner_split, split_log

DAY = 86_400.0
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def compare(label: str, encoder: PrefixEncoder, train: list[Case], scored: list[Case], history: bool) -> None:
    views = feature_views(encoder)
    state = SystemState([*train, *scored]) if history else None
    train_prefixes = encoder.encode(train)
    scored_prefixes = encoder.encode(scored, state=state)
    target = rt._targets(train, train_prefixes)
    truth = rt._targets(scored, scored_prefixes)
    protocol = scored_prefixes.length >= 2
    for feature_set in ("base+sequence", "base+sequence+intercase"):
        width, categorical = views[feature_set]
        for setting in GRID:
            booster, rounds = fit_booster(
                base_params("l1", 0, setting),
                train_prefixes.features[:, :width],
                rt._to_model(target, "l1-log-hours"),
                categorical,
                valid=(scored_prefixes.features[:, :width], rt._to_model(truth, "l1-log-hours")),
            )
            raw = np.asarray(booster.predict(scored_prefixes.features[:, :width]), dtype=np.float64)
            predicted = rt._from_model(raw, "l1-log-hours")
            row: dict[str, Any] = {
                "bench": "q5-intercase-history",
                "rows": f"{label}-{'history' if history else 'own'}",
                "feature_set": feature_set,
                "setting": setting,
                "rounds": rounds,
                "mae_days": round(float(np.mean(np.abs(truth[protocol] - predicted[protocol]))) / DAY, 4),
            }
            print(json.dumps(row), flush=True)


def next_activity(train: list[Case], scored: list[Case]) -> None:
    encoder = make_encoder("base+sequence+intercase").fit(train)
    views = feature_views(encoder)
    train_prefixes = encoder.encode(train)
    names = na._targets(train, train_prefixes)
    counts = Counter(names)
    index = {name: number for number, name in enumerate(sorted(counts, key=lambda name: (-counts[name], name)))}
    target = np.array([index[name] for name in names], dtype=np.int64)
    for history in (False, True):
        state = SystemState([*train, *scored]) if history else None
        scored_prefixes = encoder.encode(scored, state=state)
        truth_names = na._targets(scored, scored_prefixes)
        known = np.array([name in index for name in truth_names], dtype=bool)
        truth = np.array([index.get(name, 0) for name in truth_names], dtype=np.int64)
        protocol = scored_prefixes.length >= 2
        for feature_set in ("base+sequence", "base+sequence+intercase"):
            width, categorical = views[feature_set]
            booster, rounds = fit_booster(
                base_params("multiclass", 0, GRID[0], num_class=len(index)),
                train_prefixes.features[:, :width],
                target,
                categorical,
                valid=(scored_prefixes.features[known, :width], truth[known]),
            )
            raw = na._raw(booster, scored_prefixes.features[:, :width], len(index))
            hits = (np.argmax(raw, axis=1) == truth) & known
            row = {
                "bench": "q4-intercase-history",
                "rows": f"inner-{'history' if history else 'own'}",
                "feature_set": feature_set,
                "rounds": rounds,
                "accuracy": round(float(hits[protocol].mean()), 4),
            }
            print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, default=SHARED / "helpdesk" / "helpdesk_tax2017.csv.gz")
    parser.add_argument("--task", choices=("remaining-time", "next-activity"), default="remaining-time")
    args = parser.parse_args()
    log = load_log(args.log, None, None, None, lambda *_: None)
    split = split_log(log, "tax2017")[0]
    inner_train, inner_valid = inner_split(split.train, "tax2017")
    if args.task == "next-activity":
        next_activity(inner_train, inner_valid)
        return
    encoder = make_encoder("base+sequence+intercase").fit(inner_train)
    for history in (False, True):
        compare("inner", encoder, inner_train, inner_valid, history)
    encoder = make_encoder("base+sequence+intercase").fit(split.train)
    for history in (False, True):
        compare("test", encoder, list(split.train), list(split.test), history)


if __name__ == "__main__":
    main()
