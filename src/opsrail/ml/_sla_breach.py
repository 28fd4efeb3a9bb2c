"""SLA-breach prediction: will an open case end later than its target (``opsrail models train sla-breach``).

The target comes from one of three places, recorded in ``params["target"]``:

* ``target_seconds``: a case breaches when its duration (first to last event) exceeds it;
* ``target_column``: a case or event attribute holding either a per-case deadline (a timestamp: the case breaches
  when its last event is later) or a per-case boolean that is true for a breach (``!name`` negates it, for flags
  such as ``made_sla`` that are true when the target was met);
* neither: the median case duration of the training cases (chosen on training data only).

Training and scoring use prefixes of length 1 … n-1 (the case is still open) that are not already past the target
at the prefix's last event: those are known breaches, not predictions, and are excluded (counted in
``metrics["excluded_already_breached"]``). A binary LightGBM is tuned on inner validation AUC and calibrated there
with Platt scaling; ``Prediction.value`` is the calibrated breach probability, ``label`` is ``breach`` from 0.5
on, and each label gets the confidence at which it reached 90% precision on inner validation. The default split is
``temporal``: train on the earlier cases, score the later ones. The feature set (``_process.FEATURE_SETS``) is chosen
on inner AUC with the setting the grid chose for the default set (``params["feature_set"]``); inter-case columns
are computed from all cases of the log (also those without a target) and, in ``predict``, taken from
``{"context": {...}}`` (training medians otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from opsrail.ml._eventlog import Case, Event, EventLogError, parse_timestamp
from opsrail.ml._intercase import SystemState
from opsrail.ml._prefixes import PrefixEncoder, Prefixes
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
    threshold_for_precision,
    top_contributions,
)
from opsrail.ml._splits import inner_split
from opsrail.ml._types import Prediction, Progress, no_progress

__all__ = ["SlaBreachModel", "SlaTarget", "train_sla_breach"]

TARGET_PRECISION = 0.9
BREACH = "breach"
OK = "ok"
F = npt.NDArray[np.float64]
_TRUE = frozenset({"true", "t", "yes", "y", "1", "breach", "breached"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "ok", "met"})


@dataclass(frozen=True, slots=True)
class SlaTarget:
    """What counts as a breach: a duration (``seconds``) or an attribute (``column``, deadline or boolean)."""

    seconds: float | None = None
    column: str | None = None

    @property
    def description(self) -> str:
        if self.column is not None:
            return f"attribute {self.column!r} (deadline, or boolean breach flag)"
        return f"case duration above {self.seconds:.0f} s ({(self.seconds or 0) / 86_400:.2f} days)"

    def _value(self, case: Case) -> Any:
        assert self.column is not None
        key = self.column.removeprefix("!")
        keys = (key, f"case:{key}", key.removeprefix("case:"))
        for name in keys:
            if case.attributes.get(name) not in (None, ""):
                return case.attributes[name]
        for event in reversed(case.events):
            for name in keys:
                if event.attributes.get(name) not in (None, ""):
                    return event.attributes[name]
        return None

    def label(self, case: Case) -> tuple[bool, float] | None:
        """(breached, deadline in seconds since the epoch or +inf when unknown), or None when undefined."""
        if not case.events:
            return None
        if self.column is None:
            assert self.seconds is not None
            return case.end - case.start > self.seconds, case.start + self.seconds
        value = self._value(case)
        if value is None:
            return None
        if isinstance(value, bool):
            flag = value
        elif str(value).strip().lower() in _TRUE:
            flag = True
        elif str(value).strip().lower() in _FALSE:
            flag = False
        else:
            try:
                deadline = parse_timestamp(value)
            except ValueError:
                return None
            return case.end > deadline, deadline
        return (not flag if self.column.startswith("!") else flag), math.inf


def _rows(encoder: PrefixEncoder, cases: Sequence[Case], target: SlaTarget) -> tuple[Prefixes, F, int, list[Case]]:
    """Eligible prefixes (open, not yet past the target), their labels, how many were excluded as already breached."""
    kept: list[Case] = []
    deadlines: list[float] = []
    labels: list[bool] = []
    for case in cases:
        found = target.label(case)
        if found is not None:
            kept.append(case)
            labels.append(found[0])
            deadlines.append(found[1])
    prefixes = encoder.encode(kept, state=SystemState(cases) if encoder.intercase is not None else None)
    times = np.array(
        [kept[int(c)].events[int(k) - 1].timestamp for c, k in zip(prefixes.case_index, prefixes.length, strict=True)],
        dtype=np.float64,
    )
    limit = np.array([deadlines[int(c)] for c in prefixes.case_index], dtype=np.float64)
    open_rows = times <= limit
    excluded = int((~open_rows).sum())
    prefixes = Prefixes(prefixes.features[open_rows], prefixes.case_index[open_rows], prefixes.length[open_rows])
    y = np.array([1.0 if labels[int(c)] else 0.0 for c in prefixes.case_index], dtype=np.float64)
    return prefixes, y, excluded, kept


def _figures(truth: F, probability: F, elapsed: F) -> dict[str, Any]:
    from sklearn.metrics import precision_recall_curve, roc_auc_score

    out: dict[str, Any] = {"n": len(truth), "positive_share": round(float(truth.mean()), 6) if len(truth) else None}
    if len(truth) == 0 or truth.min() == truth.max():
        out.update({"auc": None, "recall_at_precision_0.9": None, "baseline_auc": None})
        return out
    precision, recall, _ = precision_recall_curve(truth, probability)
    good = recall[precision >= TARGET_PRECISION]
    out["auc"] = round(float(roc_auc_score(truth, probability)), 6)
    out["recall_at_precision_0.9"] = round(float(good.max()) if len(good) else 0.0, 6)
    out["baseline_auc"] = round(float(roc_auc_score(truth, elapsed)), 6)
    out["baseline"] = "elapsed time since the case started"
    return out


@dataclass
class SlaBreachModel(Registration):
    """Predicts whether an open case will breach its target; picklable, as the registry stores it."""

    task: ClassVar[str] = "sla-breach"

    encoder: PrefixEncoder
    booster: Any
    slope: float
    intercept: float
    target: SlaTarget

    def probability(self, features: F) -> F:
        """Calibrated breach probability per row (Platt scaling of the trees' raw score)."""
        raw = np.asarray(self.booster.predict(features, raw_score=True), dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-(self.slope * raw + self.intercept)))

    def predict(self, inputs: Mapping[str, Any]) -> Prediction:
        events, row = encoded(inputs, self._columns, self.encoder)
        [answer] = self._answers([events], row)
        return replace(answer, explanation=top_contributions(self.booster, row, self.encoder))

    def predict_many(self, inputs: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        """``predict`` for many open cases in one call of the trees, without explanations."""
        if not inputs:
            return []
        events, rows = encoded_many(inputs, self._columns, self.encoder)
        return self._answers(events, rows)

    def _answers(self, prefixes: Sequence[Sequence[Event]], rows: F) -> list[Prediction]:
        answers = []
        for events, probability in zip(prefixes, self.probability(rows).tolist(), strict=True):
            if self.target.seconds is not None and events[-1].timestamp - events[0].timestamp > self.target.seconds:
                probability = 1.0  # already past the target: a known breach, not a prediction
            label = BREACH if probability >= 0.5 else OK
            confidence = probability if label == BREACH else 1.0 - probability
            answers.append(
                Prediction(
                    label=label,
                    value=round(probability, 6),
                    confidence=round(confidence, 6),
                    accepted=confidence >= self._thresholds.get(label, 1.0),
                    probabilities={BREACH: round(probability, 6), OK: round(1.0 - probability, 6)},
                )
            )
        return answers

    def score(self, cases: Sequence[Case]) -> dict[str, Any]:
        """AUC and recall at 90% precision over open prefixes not already past the target."""
        prefixes, truth, excluded, kept = _rows(self.encoder, cases, self.target)
        elapsed = prefixes.features[:, 1] if len(prefixes) else np.zeros(0)
        figures = _figures(truth, self.probability(prefixes.features) if len(prefixes) else np.zeros(0), elapsed)
        figures["excluded_already_breached"] = excluded
        figures["cases_with_target"] = len(kept)
        figures["target"] = self.target.description
        return figures

    def evaluate(self, path: Path, *, progress: Progress = no_progress) -> dict[str, Any]:
        log = load_log(
            path, self._columns.get("case"), self._columns.get("activity"), self._columns.get("timestamp"), progress
        )
        figures = self.score(log.cases)
        figures["cases"] = len(log.cases)
        figures.update(read_notes(log))
        progress("done", 1.0)
        return figures


def _platt(raw: F, truth: F) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    if len(truth) < 20 or truth.min() == truth.max():
        return 1.0, 0.0
    fitted = LogisticRegression(C=1e4, max_iter=1000).fit(raw.reshape(-1, 1), truth.astype(int))
    return float(fitted.coef_[0, 0]), float(fitted.intercept_[0])


def _fit(cases: list[Case], method: str, seed: int, given: SlaTarget, progress: Progress) -> SlaBreachModel:
    if given.seconds is None and given.column is None:
        durations = [case.end - case.start for case in cases if case.events]
        target = SlaTarget(seconds=float(np.median(durations)))
    else:
        target = given
    inner_train, inner_valid = inner_split(cases, method)
    progress("encode prefixes", 0.0)
    encoder = make_encoder("base+sequence+intercase").fit(inner_train)
    views = feature_views(encoder)
    train_prefixes, target_train, _, _ = _rows(encoder, inner_train, target)
    valid_prefixes, target_valid, _, _ = _rows(encoder, inner_valid, target)
    if len(target_train) == 0 or target_train.min() == target_train.max():
        raise ValueError(f"sla-breach: the training cases do not have both outcomes for {target.description}")
    from sklearn.metrics import roc_auc_score

    two_classes = len(target_valid) > 0 and target_valid.min() != target_valid.max()
    trials: list[tuple[str, dict[str, float] | None]] = [(DEFAULT_FEATURE_SET, setting) for setting in GRID]
    trials += [(feature_set, None) for feature_set in FEATURE_SETS[1:]]
    best: tuple[float, dict[str, float], int, Any, str] | None = None
    scores: dict[str, float] = {}
    for number, (feature_set, grid_setting) in enumerate(trials):
        progress(f"fit trial {number + 1}/{len(trials)}", 0.05 + 0.7 * number / len(trials))
        if grid_setting is None:
            assert best is not None
            setting = best[1]  # the setting chosen for the default feature set
        else:
            setting = grid_setting
        width, categorical = views[feature_set]
        params = base_params("binary", seed, setting)
        booster, rounds = fit_booster(
            params,
            train_prefixes.features[:, :width],
            target_train,
            categorical,
            valid=(valid_prefixes.features[:, :width], target_valid) if two_classes else None,
            rounds=200 if not two_classes else 1000,
        )
        auc = (
            float(roc_auc_score(target_valid, booster.predict(valid_prefixes.features[:, :width])))
            if two_classes
            else 0.0
        )
        scores[feature_set] = max(scores.get(feature_set, -1.0), round(auc, 6))
        if best is None or auc > best[0]:
            best = (auc, setting, rounds, booster, feature_set)
    assert best is not None
    auc, setting, rounds, booster, feature_set = best
    width = views[feature_set][0]
    raw = np.asarray(booster.predict(valid_prefixes.features[:, :width], raw_score=True), dtype=np.float64)
    slope, intercept = _platt(raw, target_valid) if two_classes else (1.0, 0.0)
    probability = 1.0 / (1.0 + np.exp(-(slope * raw + intercept)))
    label = probability >= 0.5
    confidence = np.where(label, probability, 1.0 - probability)
    correct = label == (target_valid > 0.5)
    thresholds = {
        BREACH: threshold_for_precision(confidence[label], correct[label], TARGET_PRECISION),
        OK: threshold_for_precision(confidence[~label], correct[~label], TARGET_PRECISION),
    }
    inner = _figures(target_valid, probability, valid_prefixes.features[:, 1] if len(valid_prefixes) else np.zeros(0))
    inner["cases"] = len(inner_valid)
    progress("refit on all training cases", 0.8)
    final_encoder = make_encoder(feature_set).fit(cases)
    final_prefixes, final_target, excluded, _ = _rows(final_encoder, cases, target)
    final_booster, _ = fit_booster(
        base_params("binary", seed, setting),
        final_prefixes.features,
        final_target,
        final_encoder.categorical,
        rounds=refit_rounds(rounds),
    )
    progress("fitted", 1.0)
    return SlaBreachModel(
        encoder=final_encoder,
        booster=final_booster,
        slope=slope,
        intercept=intercept,
        target=target,
        _params={
            "model": "lightgbm binary, Platt-calibrated",
            "target": target.description,
            "feature_set": feature_set,
            "inner_auc_by_feature_set": scores,
            "target_seconds": target.seconds,
            "target_column": target.column,
            "setting": dict(setting),
            "rounds": refit_rounds(rounds),
            "inner_rounds": rounds,
            "calibration": {"slope": round(slope, 6), "intercept": round(intercept, 6)},
            "target_precision": TARGET_PRECISION,
            "training_prefixes": len(final_target),
            "training_positive_share": round(float(final_target.mean()), 6),
            "median_case_days": round(float(np.median([c.end - c.start for c in cases if c.events])) / 86_400, 4),
            "training_excluded_already_breached": excluded,
            "window": final_encoder.window,
            "activities": len(final_encoder.activities),
            "counted_activities": final_encoder.n_counted,
            "attributes": [feature.name for feature in final_encoder.attributes],
            "seed": seed,
            "inner_validation": "last 20% of training cases in split order",
        },
        _metrics={"inner": inner},
        _thresholds={key: round(value, 6) for key, value in thresholds.items()},
    )


def train_sla_breach(
    path: Path | str,
    *,
    case: str | None = None,
    activity: str | None = None,
    timestamp: str | None = None,
    target_seconds: float | None = None,
    target_column: str | None = None,
    split: str = "temporal",
    seed: int = 0,
    progress: Progress = no_progress,
) -> SlaBreachModel:
    """Train on the split's training cases (default: earlier cases); ``metrics`` holds held-out AUC and recall."""
    if target_seconds is not None and target_column is not None:
        raise ValueError("give target_seconds or target_column, not both")
    if target_seconds is not None and not (math.isfinite(target_seconds) and target_seconds > 0):
        raise ValueError(f"target_seconds must be a positive number of seconds, got {target_seconds!r}")
    log = load_log(path, case, activity, timestamp, progress)
    given = SlaTarget(seconds=target_seconds, column=target_column)
    if target_column is not None and not any(given.label(one) is not None for one in log.cases[:1000]):
        raise EventLogError(f"{path}: no case has a readable value for target column {target_column!r}")

    def fit(cases: list[Case], method: str, step: Progress) -> SlaBreachModel:
        return _fit(cases, method, seed, given, step)

    model, held_out = run_protocol(log, split, seed, progress, fit, lambda trained, cases: trained.score(cases))
    model.record_protocol(held_out, log.columns, split, "lengths 1 … n-1, not already past the target")
    warnings = target_warnings(model.params, held_out)
    if warnings:
        model._metrics["warnings"] = [*model._metrics.get("warnings", []), *warnings]
    return model


def target_warnings(params: Mapping[str, Any], held_out: Mapping[str, Any]) -> list[str]:
    """What to tell whoever trained the model when the target leaves it (or its figures) little to go on."""
    warnings = []
    share = float(params.get("training_positive_share") or 0.0)
    median = params.get("median_case_days")
    suggestion = (
        f"; the median case lasts {median:.2f} days (--target PT{max(1, round(median * 24))}H)"
        if params.get("target_seconds") is not None and median
        else ""
    )
    if not 0.05 <= share <= 0.95:
        outcome = "breach" if share > 0.5 else "meet"
        warnings.append(
            f"{max(share, 1 - share):.1%} of the training prefixes {outcome} the target ({params.get('target')}): "
            f"the model has little of the other outcome to learn from{suggestion}"
        )
    if held_out.get("n") and held_out.get("auc") is None:
        positive = held_out.get("positive_share")
        outcome = "breach" if positive else "meet"
        warnings.append(
            f"every held-out prefix would {outcome} the target, so AUC and recall are undefined: the held-out "
            "figures say nothing about this model; try another target or --split"
        )
    return warnings
