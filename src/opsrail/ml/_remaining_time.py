"""Remaining-time prediction: how long until an open case ends (``opsrail models train remaining-time``).

A LightGBM regressor over prefix features (``_prefixes``), trained on every prefix of length 1 … n-1 of the
training cases; the target is the time from the prefix's last event to the case's last event. Because the figure
that matters is the mean absolute error, three objectives are tried on the inner validation split: L1 on seconds,
L1 on log(1 + hours) (the same conditional median, but residuals on a log scale weigh short and long cases alike
while the trees grow) and L2 on log(1 + hours) (a geometric-mean-like value); the one with the lower inner MAE
wins. A guard compares it with the median of the training targets on the same inner
prefixes: if the model is not better there, the model predicts that median instead (``params["fallback"]``).
The feature set (``_process.FEATURE_SETS``) is chosen on inner MAE too: the objectives and settings are tried on the
default set, then every objective on the other sets with the chosen setting (``params["feature_set"]``). Models
with inter-case columns take the system state at the last event from ``{"context": {...}}`` in ``predict``.

``Prediction.value`` is the remaining time in seconds. ``confidence`` is a documented proxy: the share of inner
validation prefixes, among those with a prediction of similar size (the same decile), whose true remaining time
was within ±50% of the prediction (or within an hour); ``accepted`` is ``confidence >= 0.5``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from opsrail.ml._eventlog import Case
from opsrail.ml._prefixes import PrefixEncoder, Prefixes, prefix_lengths
from opsrail.ml._process import (
    DEFAULT_FEATURE_SET,
    FEATURE_SETS,
    GRID,
    Registration,
    base_params,
    encoded,
    encoded_many,
    feature_views,
    fit_booster,
    load_log,
    make_encoder,
    read_notes,
    refit_rounds,
    run_protocol,
    top_contributions,
)
from opsrail.ml._splits import inner_split
from opsrail.ml._types import Prediction, Progress, no_progress

__all__ = ["RemainingTimeModel", "train_remaining_time"]

DAY = 86_400.0
HOUR = 3_600.0
ACCEPT = 0.5
TOLERANCE = 0.5
OBJECTIVES = ("l1-seconds", "l1-log-hours", "l2-log-hours")
_LOSS = {"l1-seconds": "l1", "l1-log-hours": "l1", "l2-log-hours": "l2"}
F = npt.NDArray[np.float64]


def _eval_lengths(n_events: int) -> range:
    return prefix_lengths(n_events, first=2)


def _targets(cases: Sequence[Case], prefixes: Prefixes) -> F:
    return np.array(
        [
            cases[int(c)].events[-1].timestamp - cases[int(c)].events[int(k) - 1].timestamp
            for c, k in zip(prefixes.case_index, prefixes.length, strict=True)
        ],
        dtype=np.float64,
    )


def _to_model(seconds: F, objective: str) -> F:
    return np.log1p(np.maximum(seconds, 0.0) / HOUR) if objective.endswith("log-hours") else seconds


def _from_model(values: F, objective: str) -> F:
    out = np.expm1(values) * HOUR if objective.endswith("log-hours") else values
    return np.maximum(out, 0.0)


def _within(truth: F, predicted: F) -> npt.NDArray[np.bool_]:
    return np.abs(truth - predicted) <= np.maximum(TOLERANCE * predicted, HOUR)


@dataclass
class RemainingTimeModel(Registration):
    """Predicts the remaining time of an open case, in seconds; picklable, as the registry stores it."""

    task: ClassVar[str] = "remaining-time"

    encoder: PrefixEncoder
    booster: Any
    objective: str
    median_seconds: float
    confidence_edges: tuple[float, ...] = ()
    confidence_shares: tuple[float, ...] = (0.0,)

    def seconds(self, features: F) -> F:
        """Predicted remaining seconds, one per row (the training median when the model fell back to it)."""
        if self.booster is None:
            return np.full(len(features), self.median_seconds, dtype=np.float64)
        raw = np.asarray(self.booster.predict(features), dtype=np.float64)
        return _from_model(raw, self.objective)

    def confidence(self, predicted: float) -> float:
        position = int(np.searchsorted(np.asarray(self.confidence_edges), predicted, side="right"))
        return float(self.confidence_shares[min(position, len(self.confidence_shares) - 1)])

    def predict(self, inputs: Mapping[str, Any]) -> Prediction:
        _, row = encoded(inputs, self._columns, self.encoder)
        [answer] = self._answers(row)
        if self.booster is None:
            return answer
        return replace(answer, explanation=top_contributions(self.booster, row, self.encoder))

    def predict_many(self, inputs: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        """``predict`` for many open cases in one call of the trees, without explanations."""
        if not inputs:
            return []
        _, rows = encoded_many(inputs, self._columns, self.encoder)
        return self._answers(rows)

    def _answers(self, rows: F) -> list[Prediction]:
        answers = []
        for value in self.seconds(rows).tolist():
            confidence = self.confidence(value)
            answers.append(
                Prediction(
                    label=None, value=round(value, 3), confidence=round(confidence, 6), accepted=confidence >= ACCEPT
                )
            )
        return answers

    def score(self, cases: Sequence[Case]) -> dict[str, Any]:
        """MAE in days over every prefix of length 2 … n-1, and the same for the training median."""
        prefixes = self.encoder.encode(cases, _eval_lengths)
        truth = _targets(cases, prefixes)
        if len(truth) == 0:
            return {"mae_days": None, "median_baseline_mae_days": None, "n": 0}
        predicted = self.seconds(prefixes.features)
        return {
            "mae_days": round(float(np.mean(np.abs(truth - predicted))) / DAY, 6),
            "median_baseline_mae_days": round(float(np.mean(np.abs(truth - self.median_seconds))) / DAY, 6),
            "within_50_percent": round(float(np.mean(_within(truth, predicted))), 6),
            "n": len(truth),
        }

    def evaluate(self, path: Path, *, progress: Progress = no_progress) -> dict[str, Any]:
        log = load_log(
            path, self._columns.get("case"), self._columns.get("activity"), self._columns.get("timestamp"), progress
        )
        figures = self.score(log.cases)
        figures["cases"] = len(log.cases)
        figures.update(read_notes(log))
        progress("done", 1.0)
        return figures


def _fit(cases: list[Case], method: str, seed: int, progress: Progress) -> RemainingTimeModel:
    inner_train, inner_valid = inner_split(cases, method)
    progress("encode prefixes", 0.0)
    encoder = make_encoder("base+sequence+intercase").fit(inner_train)
    views = feature_views(encoder)
    train_prefixes = encoder.encode(inner_train)
    target = _targets(inner_train, train_prefixes)
    valid_prefixes = encoder.encode(inner_valid)
    valid_target = _targets(inner_valid, valid_prefixes)
    if len(target) == 0 or len(valid_target) == 0:
        raise ValueError("remaining-time needs cases with at least two events in training and inner validation")
    protocol = valid_prefixes.length >= 2
    if not protocol.any():
        protocol = np.ones(len(valid_target), dtype=bool)
    inner_median = float(np.median(target))
    median_mae = float(np.mean(np.abs(valid_target[protocol] - inner_median)))
    best: tuple[float, str, dict[str, float], int, F, str] | None = None
    scores: dict[str, float] = {}

    def trial(feature_set: str, objective: str, setting: dict[str, float]) -> None:
        nonlocal best
        width, categorical = views[feature_set]
        params = base_params(_LOSS[objective], seed, setting)
        booster, rounds = fit_booster(
            params,
            train_prefixes.features[:, :width],
            _to_model(target, objective),
            categorical,
            valid=(valid_prefixes.features[:, :width], _to_model(valid_target, objective)),
        )
        raw = np.asarray(booster.predict(valid_prefixes.features[:, :width]), dtype=np.float64)
        predicted = _from_model(raw, objective)
        mae = float(np.mean(np.abs(valid_target[protocol] - predicted[protocol])))
        key = f"{feature_set} {objective}"
        scores[key] = min(scores.get(key, math.inf), round(mae / DAY, 6))
        if best is None or mae < best[0]:
            best = (mae, objective, setting, rounds, predicted, feature_set)

    first = [(objective, setting) for objective in OBJECTIVES for setting in GRID]
    total = len(first) + len(OBJECTIVES) * (len(FEATURE_SETS) - 1)
    for number, (objective, setting) in enumerate(first):
        progress(f"fit trial {number + 1}/{total}", 0.05 + 0.7 * number / total)
        trial(DEFAULT_FEATURE_SET, objective, setting)
    assert best is not None
    chosen_setting = best[2]
    number = len(first)
    for feature_set in FEATURE_SETS[1:]:
        for objective in OBJECTIVES:
            progress(f"fit trial {number + 1}/{total}", 0.05 + 0.7 * number / total)
            trial(feature_set, objective, chosen_setting)
            number += 1
    assert best is not None
    mae, objective, setting, rounds, predicted, feature_set = best
    fallback = not mae < median_mae
    if fallback:
        predicted = np.full(len(valid_target), inner_median)
    edges = tuple(float(edge) for edge in np.quantile(predicted, np.linspace(0.1, 0.9, 9)))
    bins = np.searchsorted(np.asarray(edges), predicted, side="right")
    hits = _within(valid_target, predicted)
    overall = float(hits.mean())
    shares = tuple(float(hits[bins == index].mean()) if (bins == index).any() else overall for index in range(10))
    inner = {
        "mae_days": round((median_mae if fallback else mae) / DAY, 6),
        "median_baseline_mae_days": round(median_mae / DAY, 6),
        "model_mae_days": round(mae / DAY, 6),
        "n": int(protocol.sum()),
        "cases": len(inner_valid),
    }
    progress("refit on all training cases", 0.8)
    final_encoder = make_encoder(feature_set).fit(cases)
    final_prefixes = final_encoder.encode(cases)
    final_target = _targets(cases, final_prefixes)
    final_booster = None
    if not fallback:
        params = base_params(_LOSS[objective], seed, setting)
        final_booster, _ = fit_booster(
            params,
            final_prefixes.features,
            _to_model(final_target, objective),
            final_encoder.categorical,
            rounds=refit_rounds(rounds),
        )
    progress("fitted", 1.0)
    return RemainingTimeModel(
        encoder=final_encoder,
        booster=final_booster,
        objective=objective,
        median_seconds=float(np.median(final_target)),
        confidence_edges=edges,
        confidence_shares=tuple(round(share, 6) for share in shares),
        _params={
            "model": "training median" if fallback else f"lightgbm regression ({objective})",
            "objective": objective,
            "feature_set": feature_set,
            "inner_mae_days_by_feature_set_and_objective": scores,
            "fallback": fallback,
            "setting": dict(setting),
            "rounds": refit_rounds(rounds),
            "inner_rounds": rounds,
            "median_seconds": round(float(np.median(final_target)), 3),
            "confidence": f"share within ±{TOLERANCE:.0%} (or an hour) on inner validation, by decile",
            "window": final_encoder.window,
            "activities": len(final_encoder.activities),
            "counted_activities": final_encoder.n_counted,
            "attributes": [feature.name for feature in final_encoder.attributes],
            "seed": seed,
            "inner_validation": "last 20% of training cases in split order",
        },
        _metrics={"inner": inner},
    )


def train_remaining_time(
    path: Path | str,
    *,
    case: str | None = None,
    activity: str | None = None,
    timestamp: str | None = None,
    split: str = "tax2017",
    seed: int = 0,
    progress: Progress = no_progress,
) -> RemainingTimeModel:
    """Train on the split's training cases; ``metrics``: held-out MAE (days), the median baseline, inner figures."""
    log = load_log(path, case, activity, timestamp, progress)

    def fit(cases: list[Case], method: str, step: Progress) -> RemainingTimeModel:
        return _fit(cases, method, seed, step)

    model, held_out = run_protocol(log, split, seed, progress, fit, lambda trained, cases: trained.score(cases))
    model.record_protocol(held_out, log.columns, split, "lengths 2 … n-1 of each held-out case")
    if not math.isfinite(model.median_seconds):
        raise ValueError("remaining-time: no usable training prefixes")
    return model
