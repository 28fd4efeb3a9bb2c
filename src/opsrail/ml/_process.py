"""What the three event-log predictors share: the evaluation protocol, gradient-boosted trees, calibration, thresholds.

The models themselves live next door: ``_next_activity`` (``train_next_activity``), ``_remaining_time``
(``train_remaining_time``) and ``_sla_breach`` (``train_sla_breach``). Each is trained the same way:

1. read the log (``read_event_log``) and split it by case (``split_log``: ``tax2017``, ``temporal`` or ``kfold``);
2. on the training cases only, hold out the last 20% (in the split's order) as inner validation, fit the prefix
   encoder on the rest, and try a small grid of LightGBM settings with early stopping on the inner validation
   prefixes; the best setting, its number of rounds, the calibration and the acceptance thresholds are chosen there;
   the feature set (``FEATURE_SETS``: base columns, plus sequence columns, plus inter-case columns) is chosen
   there too, with the setting chosen for the default set;
3. refit the encoder and the trees with that setting on all training cases: this is the model the registry keeps;
4. score the held-out cases of the split (for ``kfold``: each fold in turn, averaged, then a final model on every
   case) and record those figures with the inner-validation ones in ``metrics``.

Nothing about the held-out cases influences a setting. Everything here is CPU-only, two threads.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from opsrail.ml._eventlog import Case, Event, EventLog, EventLogError, events_from_records, read_event_log
from opsrail.ml._features import SequenceFeatures
from opsrail.ml._intercase import InterCaseFeatures
from opsrail.ml._prefixes import PrefixEncoder
from opsrail.ml._splits import SPLIT_METHODS, split_log
from opsrail.ml._types import Progress

__all__ = [
    "DEFAULT_FEATURE_SET",
    "FEATURE_SETS",
    "GRID",
    "THREADS",
    "Columns",
    "encoded",
    "encoded_many",
    "feature_views",
    "fit_booster",
    "load_log",
    "make_encoder",
    "mean_metrics",
    "prefix_context",
    "prefix_inputs",
    "read_notes",
    "run_protocol",
    "threshold_for_precision",
    "top_contributions",
]

# Idle OpenMP threads sleep instead of spinning: on a shared two-core machine spinning threads slow LightGBM down
# several times. Read once, when the OpenMP runtime starts (so before LightGBM is first imported).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

THREADS = 2
GRID: tuple[dict[str, float], ...] = (
    {"num_leaves": 15, "min_data_in_leaf": 20, "lambda_l2": 0.0},
    {"num_leaves": 63, "min_data_in_leaf": 20, "lambda_l2": 1.0},
    {"num_leaves": 31, "min_data_in_leaf": 100, "lambda_l2": 10.0},
)
"""LightGBM settings tried on the inner validation split (the rest is fixed: learning rate 0.05, 80% features and
rows per tree, early stopping after 40 rounds without improvement, at most 1,000 rounds)."""
MAX_ROUNDS = 1000
PATIENCE = 40
REFIT_ROUNDS = 1.1
"""The final model, trained on 25% more cases than the inner one, gets 10% more rounds than early stopping chose."""

FEATURE_SETS = ("base+sequence", "base", "base+sequence+intercase")
"""Feature sets compared on the inner validation split; the first is the default the setting grid is tuned on."""
DEFAULT_FEATURE_SET = FEATURE_SETS[0]

Columns = dict[str, str]
F = npt.NDArray[np.float64]
M = TypeVar("M")


@dataclass
class Registration:
    """What a trained event-log model hands the registry: its settings, figures, columns and thresholds.

    Keyword-only, so that each model's own fields (without defaults) can come first in its constructor.
    """

    _params: dict[str, Any] = field(default_factory=dict, kw_only=True)
    _metrics: dict[str, Any] = field(default_factory=dict, kw_only=True)
    _columns: dict[str, str] = field(default_factory=dict, kw_only=True)
    _thresholds: dict[str, float] = field(default_factory=dict, kw_only=True)

    @property
    def params(self) -> Mapping[str, Any]:
        return self._params

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self._metrics

    @property
    def columns(self) -> Mapping[str, str]:
        return self._columns

    @property
    def thresholds(self) -> Mapping[str, float]:
        return self._thresholds

    def record_protocol(
        self, held_out: Mapping[str, Any], columns: Mapping[str, str], split: str, prefixes: str
    ) -> None:
        """Keep the held-out figures beside the inner ones, the log's columns and the split it was trained under."""
        inner = self._metrics.get("inner", {})
        self._metrics = {**held_out, "inner": inner, "prefixes": prefixes}
        self._columns = dict(columns)
        self._params["split"] = split


def make_encoder(feature_set: str) -> PrefixEncoder:
    """An unfitted encoder for one of ``FEATURE_SETS``."""
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; choose one of {', '.join(FEATURE_SETS)}")
    return PrefixEncoder(
        sequence=SequenceFeatures() if "sequence" in feature_set else None,
        intercase=InterCaseFeatures() if "intercase" in feature_set else None,
    )


def feature_views(full: PrefixEncoder) -> dict[str, tuple[int, list[int]]]:
    """For each feature set: how many leading columns of ``full``'s rows it uses, and its categorical columns.

    ``full`` must be the ``base+sequence+intercase`` encoder: the three sets share their leading columns (base,
    then sequence, then inter-case columns), so one encoding serves all three.
    """
    assert full.sequence is not None and full.intercase is not None
    at = full._sequence_at
    with_sequence = at + full.sequence.width
    categorical = full.categorical
    return {
        "base": (at, [column for column in categorical if column < at]),
        "base+sequence": (with_sequence, list(categorical)),
        "base+sequence+intercase": (with_sequence + full.intercase.width, list(categorical)),
    }


def load_log(
    path: Path | str,
    case: str | None,
    activity: str | None,
    timestamp: str | None,
    progress: Progress,
) -> EventLog:
    log = read_event_log(path, case=case, activity=activity, timestamp=timestamp, progress=progress)
    if len(log.cases) < 10:
        found = "1 case is" if len(log.cases) == 1 else f"{len(log.cases)} cases are"
        raise EventLogError(f"{path}: {found} too few to train a model (at least 10)")
    return log


def base_params(objective: str, seed: int, setting: Mapping[str, float], **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "objective": objective,
        "learning_rate": 0.05,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "min_data_per_group": 20,
        "cat_smooth": 10.0,
        "max_bin": 255,
        "num_threads": THREADS,
        "verbose": -1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
    }
    params.update(
        {key: (int(value) if key in ("num_leaves", "min_data_in_leaf") else value) for key, value in setting.items()}
    )
    params.update(extra)
    return params


def fit_booster(
    params: Mapping[str, Any],
    features: F,
    target: npt.NDArray[Any],
    categorical: Sequence[int],
    *,
    valid: tuple[F, npt.NDArray[Any]] | None = None,
    rounds: int = MAX_ROUNDS,
) -> tuple[Any, int]:
    """Train a LightGBM booster; with ``valid``, stop early and return the best number of rounds."""
    import lightgbm as lgb

    train_set = lgb.Dataset(features, label=target, categorical_feature=list(categorical), free_raw_data=True)
    if valid is None or len(valid[1]) == 0:
        booster = lgb.train(dict(params), train_set, num_boost_round=max(rounds, 1))
        return booster, max(rounds, 1)
    valid_set = lgb.Dataset(valid[0], label=valid[1], reference=train_set, categorical_feature=list(categorical))
    booster = lgb.train(
        dict(params),
        train_set,
        num_boost_round=rounds,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(PATIENCE, verbose=False)],
    )
    best = int(booster.best_iteration or booster.current_iteration())
    return booster, max(best, 1)


def refit_rounds(best: int) -> int:
    return max(1, round(best * REFIT_ROUNDS))


def top_contributions(
    booster: Any,
    row: F,
    encoder: PrefixEncoder,
    *,
    block: int = 0,
    limit: int = 5,
) -> tuple[dict[str, Any], ...]:
    """The features that pushed this answer most (LightGBM's SHAP values), strongest first.

    ``block`` selects the class for multiclass models. Weights are in the model's raw units (log-odds for
    classifiers, the regression target's units for regressors).
    """
    contributions = np.asarray(booster.predict(row, pred_contrib=True), dtype=np.float64).reshape(-1)
    width = row.shape[1] + 1
    part = contributions[block * width : (block + 1) * width - 1]
    names = encoder.feature_names
    order = np.argsort(-np.abs(part))[:limit]
    return tuple(
        {
            "feature": names[index],
            "weight": round(float(part[index]), 6),
            "value": encoder.describe(int(index), float(row[0, index])),
        }
        for index in order
        if part[index] != 0.0
    )


def threshold_for_precision(
    confidence: npt.NDArray[np.float64], correct: npt.NDArray[np.bool_], target: float
) -> float:
    """The lowest confidence at which answers at or above it reach ``target`` precision (1.0 when none does)."""
    if len(confidence) == 0:
        return 1.0
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    precision = hits / np.arange(1, len(order) + 1)
    good = np.flatnonzero(precision >= target)
    if len(good) == 0:
        return 1.0
    return float(confidence[order][good[-1]])


SUMMED_OVER_FOLDS = frozenset({"n", "test_cases", "cases_with_target", "excluded_already_breached"})
"""Counts of held-out rows and cases: each case is held out by exactly one fold, so the folds' counts add up."""


def mean_metrics(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The mean of each numeric figure over folds (held-out counts, ``SUMMED_OVER_FOLDS``, are summed; ``split``
    names the protocol); other values are taken from the first run."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            out[key] = value
            continue
        values = [float(run[key]) for run in runs if isinstance(run.get(key), int | float)]
        finite = [item for item in values if math.isfinite(item)]
        if key in SUMMED_OVER_FOLDS:
            out[key] = int(sum(values))
        else:
            out[key] = round(sum(finite) / len(finite), 6) if finite else None
    out["split"] = f"{len(runs)}-fold cross-validation over cases (figures: mean over folds; counts: sum)"
    out["folds"] = [dict(run) for run in runs]
    return out


def run_protocol(
    log: EventLog,
    split: str,
    seed: int,
    progress: Progress,
    fit: Callable[[list[Case], str, Progress], M],
    score: Callable[[M, list[Case]], dict[str, Any]],
) -> tuple[M, dict[str, Any]]:
    """Fit on the split's training cases and score its held-out cases; for ``kfold`` average and refit on all."""
    if split not in SPLIT_METHODS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_METHODS)}")
    started = time.perf_counter()
    splits = split_log(log, split, seed=seed)
    runs: list[dict[str, Any]] = []
    model: M | None = None
    for number, part in enumerate(splits):
        share = 1.0 / (len(splits) + (1 if split == "kfold" else 0))

        def step(stage: str, fraction: float, number: int = number, share: float = share) -> None:
            progress(
                stage if len(splits) == 1 else f"{stage} ({number + 1}/{len(splits)})", (number + fraction) * share
            )

        fit_started = time.perf_counter()
        model = fit(part.train, split, step)
        fit_seconds = time.perf_counter() - fit_started
        figures = score(model, part.test)
        figures["split"] = part.name
        figures["train_cases"] = len(part.train)
        figures["test_cases"] = len(part.test)
        figures["fit_seconds"] = round(fit_seconds, 2)
        runs.append(figures)
    if split == "kfold":
        metrics = mean_metrics(runs)

        def last(stage: str, fraction: float) -> None:
            progress(f"{stage} (all cases)", (len(splits) + fraction) / (len(splits) + 1))

        model = fit(list(log.cases), split, last)
    else:
        metrics = runs[0]
    assert model is not None
    metrics["train_seconds"] = round(time.perf_counter() - started, 2)
    metrics.update(read_notes(log))
    progress("done", 1.0)
    return model, metrics


def read_notes(log: EventLog) -> dict[str, Any]:
    """What reading the log left out, for a model's metrics or an evaluation's figures (nothing when complete)."""
    if not log.left_out:
        return {}
    return {"events_left_out": sum(log.left_out.values()), "warnings": log.notes()}


def prefix_context(inputs: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The optional ``"context"`` object of a predict input: inter-case values at the last event."""
    context = inputs.get("context")
    if context is None:
        return None
    if not isinstance(context, Mapping):
        raise EventLogError('"context" must be an object of system-state values (open_cases, …)')
    return context


def encoded(inputs: Mapping[str, Any], columns: Mapping[str, str], encoder: PrefixEncoder) -> tuple[list[Event], F]:
    """The events of one open case and its feature row (shape ``(1, width)``)."""
    events, attributes = prefix_inputs(inputs, columns, encoder)
    return events, encoder.encode_one(events, attributes, prefix_context(inputs))


def encoded_many(
    inputs: Sequence[Mapping[str, Any]], columns: Mapping[str, str], encoder: PrefixEncoder
) -> tuple[list[list[Event]], F]:
    """The events of each open case and their feature rows, one matrix (for one model call over them all)."""
    pairs = [encoded(one, columns, encoder) for one in inputs]
    if not pairs:
        return [], np.zeros((0, len(encoder.feature_names)), dtype=np.float64)
    return [events for events, _ in pairs], np.vstack([row for _, row in pairs])


def prefix_inputs(
    inputs: Mapping[str, Any], columns: Mapping[str, str], encoder: PrefixEncoder
) -> tuple[list[Event], dict[str, Any]]:
    """The events and case attributes of one open case from ``{"events": [...], "attributes": {...}}``.

    Case attributes may also be given on the events (the first value wins), under their training name
    (``case:channel``) or without the ``case:`` prefix.
    """
    records = inputs.get("events")
    if not isinstance(records, Sequence) or isinstance(records, str | bytes) or not records:
        raise EventLogError('expected {"events": [{"activity": ..., "timestamp": ...}, ...]} with at least one event')
    events = events_from_records(records, columns)
    given = inputs.get("attributes") or inputs.get("case") or {}
    if not isinstance(given, Mapping):
        raise EventLogError('"attributes" must be an object of case attributes')
    attributes: dict[str, Any] = {}
    wanted = [feature.key for feature in encoder.attributes if feature.level == "case"]
    for key in wanted:
        bare = key[5:] if key.startswith("case:") else key
        for source in (given, *(event.attributes for event in events)):
            value = source.get(key, source.get(bare))
            if value is not None:
                attributes[key] = value
                break
    return events, attributes
