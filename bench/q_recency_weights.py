"""Does weighting recent training cases more help remaining-time prediction on a drifting log? (context for Q5)

Processes drift (Helpdesk's median case duration fell from 10 days in 2010 to 2-3 days in 2012). Each training
prefix gets the weight 0.5 ** (age / half-life), its case's age being the time from its start to the latest training
case's start. For each half-life (none, then the given ones) and each setting of the grid, LightGBM with the
registered objective (L1 on log hours) is fitted on the inner training cases and scored on the inner validation
cases (prefixes 2 … n-1, as the trainer chooses); the best setting of each half-life is then refitted on every
training case of the Tax et al. split and scored on the held-out third, as Q5 is.
Usage: python -m bench.q_recency_weights [--log PATH] [--feature-set base+sequence+intercase] [--half-lives 730 365 90]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from opsrail.ml._eventlog import Case, read_event_log
from opsrail.ml._prefixes import PrefixEncoder, Prefixes
from opsrail.ml._process import GRID, base_params, feature_views, make_encoder
from opsrail.ml._remaining_time import _LOSS, _eval_lengths, _from_model, _targets, _to_model
from opsrail.ml._splits import inner_split, split_log

LOG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "helpdesk" / "helpdesk_tax2017.csv.gz"
DAY = 86_400.0
OBJECTIVE = "l1-log-hours"
F = npt.NDArray[np.float64]


def encoded(
    encoder: PrefixEncoder, cases: Sequence[Case], lengths: Callable[[int], range] | None = None
) -> tuple[Prefixes, F]:
    prefixes = encoder.encode(cases) if lengths is None else encoder.encode(cases, lengths)
    return prefixes, _targets(cases, prefixes)


def weights(cases: Sequence[Case], prefixes: Prefixes, half_life_days: float | None) -> F | None:
    if half_life_days is None:
        return None
    starts = np.array([case.start for case in cases])[prefixes.case_index]
    return np.asarray(0.5 ** ((starts.max() - starts) / (half_life_days * DAY)), dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log", type=Path, default=LOG)
    parser.add_argument("--feature-set", default="base+sequence+intercase")
    parser.add_argument("--half-lives", type=float, nargs="+", default=[730.0, 365.0, 180.0, 90.0, 45.0])
    args = parser.parse_args()
    log = read_event_log(args.log)
    [part] = split_log(log, "tax2017")
    inner_train, inner_valid = inner_split(part.train, "tax2017")
    encoder = make_encoder("base+sequence+intercase").fit(inner_train)
    width, categorical = feature_views(encoder)[args.feature_set]
    train, target = encoded(encoder, inner_train)
    valid, valid_target = encoded(encoder, inner_valid)
    protocol = valid.length >= 2
    half_lives: list[float | None] = [None, *args.half_lives]
    inner: dict[tuple[float | None, int], tuple[float, int]] = {}
    for half in half_lives:
        for number, setting in enumerate(GRID):
            data = lgb.Dataset(
                train.features[:, :width],
                label=_to_model(target, OBJECTIVE),
                weight=weights(inner_train, train, half),
                categorical_feature=categorical,
            )
            check = lgb.Dataset(valid.features[:, :width], label=_to_model(valid_target, OBJECTIVE), reference=data)
            booster = lgb.train(
                base_params(_LOSS[OBJECTIVE], 0, setting),
                data,
                1000,
                valid_sets=[check],
                callbacks=[lgb.early_stopping(40, verbose=False)],
            )
            predicted = _from_model(np.asarray(booster.predict(valid.features[:, :width])), OBJECTIVE)
            mae = float(np.mean(np.abs(valid_target[protocol] - predicted[protocol]))) / DAY
            inner[(half, number)] = (mae, int(booster.best_iteration))
    final = make_encoder(args.feature_set).fit(part.train)
    everything, everything_target = encoded(final, part.train)
    held, held_target = encoded(final, part.test, _eval_lengths)
    rows: list[dict[str, Any]] = []
    for half in half_lives:
        mae, rounds, number = min((*inner[(half, n)], n) for n in range(len(GRID)))
        booster = lgb.train(
            base_params(_LOSS[OBJECTIVE], 0, GRID[number]),
            lgb.Dataset(
                everything.features,
                label=_to_model(everything_target, OBJECTIVE),
                weight=weights(part.train, everything, half),
                categorical_feature=final.categorical,
            ),
            max(1, round(rounds * 1.1)),
        )
        predicted = _from_model(np.asarray(booster.predict(held.features)), OBJECTIVE)
        rows.append(
            {
                "half_life_days": half,
                "setting": number,
                "inner_mae_days": round(mae, 4),
                "held_out_mae_days": round(float(np.mean(np.abs(held_target - predicted))) / DAY, 4),
            }
        )
    print(json.dumps({"log": args.log.name, "feature_set": args.feature_set, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
