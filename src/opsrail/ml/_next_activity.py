"""Next-activity prediction: which activity an open case will do next (``opsrail models train next-activity``).

A multiclass LightGBM over prefix features (``_prefixes``), trained on every prefix of length 1 … n-1 of the
training cases (the target is event k+1; the end of a case is never a target). Probabilities are calibrated with one
temperature fitted on the inner validation prefixes, and each class gets the confidence threshold at which answers
of that class reached 90% precision there. Figures follow Tax et al. 2017: every prefix of length 2 … n-1 of each
held-out case is scored; the reference is the last-activity baseline (the most frequent follower of the last
activity in the training cases). The feature set (``_process.FEATURE_SETS``) is chosen on inner accuracy with the
setting the grid chose for the default set; ``params["feature_set"]`` records it. Models with inter-case columns
take the system state at the last event from ``{"context": {...}}`` in ``predict`` (training medians otherwise).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from opsrail.ml._eventlog import Case, Event
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
    prefix_inputs,
    read_notes,
    refit_rounds,
    run_protocol,
    threshold_for_precision,
    top_contributions,
)
from opsrail.ml._splits import inner_split
from opsrail.ml._types import Prediction, Progress, no_progress

__all__ = ["NextActivityModel", "train_next_activity"]

TARGET_PRECISION = 0.9
F = npt.NDArray[np.float64]

MAX_CLASSES = 40
"""The next activities a model answers: the most frequent ones in its training prefixes (ties by name). LightGBM
grows one tree per class each round, so a log of a thousand activities would train for hours; prefixes followed by
a rarer activity are left out of training, and counted as wrong answers wherever the model is scored."""


def _answerable(names: Sequence[str]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The classes a model is trained on (most frequent first) and what the cap left out."""
    counts = Counter(names)
    ordered = sorted(counts, key=lambda name: (-counts[name], name))
    kept = tuple(ordered[:MAX_CLASSES])
    left_out = sum(counts[name] for name in ordered[MAX_CLASSES:])
    return kept, {
        "next_activities": len(ordered),
        "answered": len(kept),
        "prefixes_left_out": left_out,
        "share_left_out": round(left_out / max(len(names), 1), 6),
    }


def _kept(features: F, names: Sequence[str], index: Mapping[str, int]) -> tuple[F, npt.NDArray[np.int64]]:
    """The rows whose next activity is one of the model's classes, and their class numbers."""
    kept = np.array([name in index for name in names], dtype=bool)
    target = np.array([index[name] for name in names if name in index], dtype=np.int64)
    return (features if kept.all() else features[kept]), target


def _eval_lengths(n_events: int) -> range:
    return prefix_lengths(n_events, first=2)


def _targets(cases: Sequence[Case], prefixes: Prefixes) -> list[str]:
    return [cases[int(c)].events[int(k)].activity for c, k in zip(prefixes.case_index, prefixes.length, strict=True)]


def _softmax(raw: F, temperature: float) -> F:
    scaled = raw / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    np.exp(scaled, out=scaled)
    scaled /= scaled.sum(axis=1, keepdims=True)
    return scaled


def _raw(booster: Any, features: F, n_classes: int) -> F:
    raw = np.asarray(booster.predict(features, raw_score=True), dtype=np.float64)
    return raw.reshape(len(features), n_classes)


def _temperature(raw: F, target: npt.NDArray[np.int64]) -> float:
    """One temperature minimising the validation log-loss (1.0 when there is nothing to fit)."""
    if len(target) < 20:
        return 1.0
    from scipy.optimize import minimize_scalar

    def loss(log_t: float) -> float:
        probabilities = _softmax(raw, math.exp(log_t))
        picked = probabilities[np.arange(len(target)), target]
        return float(-np.mean(np.log(np.clip(picked, 1e-12, None))))

    found = minimize_scalar(loss, bounds=(-2.0, 2.0), method="bounded")
    return float(math.exp(found.x))


def _baseline(cases: Sequence[Case]) -> tuple[dict[str, str], str]:
    """The most frequent follower of each activity in training cases, and the most frequent target overall."""
    followers: dict[str, Counter[str]] = {}
    overall: Counter[str] = Counter()
    for case in cases:
        for before, after in zip(case.events, case.events[1:], strict=False):
            followers.setdefault(before.activity, Counter())[after.activity] += 1
            overall[after.activity] += 1
    table = {name: counts.most_common(1)[0][0] for name, counts in followers.items()}
    return table, (overall.most_common(1)[0][0] if overall else "")


def _follow(follower: Mapping[str, str], most_frequent: str, cases: Sequence[Case], prefixes: Prefixes) -> list[str]:
    """The follower table's answer for each prefix: the most frequent follower of its last activity."""
    return [
        follower.get(cases[int(c)].events[int(k) - 1].activity, most_frequent)
        for c, k in zip(prefixes.case_index, prefixes.length, strict=True)
    ]


def _follower_precision(
    cases: Sequence[Case], prefixes: Prefixes, truth: Sequence[str], answers: Sequence[str]
) -> dict[str, float]:
    """Per last activity, the share of prefixes whose next activity was the follower table's answer; under ``""``
    the share over all prefixes (for activities never seen last)."""
    hits: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for c, k, right, answer in zip(prefixes.case_index, prefixes.length, truth, answers, strict=True):
        last = cases[int(c)].events[int(k) - 1].activity
        seen[last] += 1
        hits[last] += right == answer
    precision = {name: round(hits[name] / seen[name], 6) for name in seen}
    precision[""] = round(sum(hits.values()) / max(sum(seen.values()), 1), 6)
    return precision


def _figures(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    from sklearn.metrics import f1_score

    if not truth:
        return {"accuracy": None, "macro_f1": None, "n": 0}
    hits = sum(a == b for a, b in zip(truth, predicted, strict=True))
    return {
        "accuracy": round(hits / len(truth), 6),
        "macro_f1": round(float(f1_score(list(truth), list(predicted), average="macro", zero_division=0)), 6),
        "n": len(truth),
    }


@dataclass
class NextActivityModel(Registration):
    """Predicts the next activity of an open case; picklable, as the registry stores it."""

    task: ClassVar[str] = "next-activity"

    encoder: PrefixEncoder
    booster: Any
    classes: tuple[str, ...]
    temperature: float
    follower: dict[str, str]
    most_frequent: str
    follower_precision: dict[str, float] | None = None
    """Set when the model answers with the follower table (see ``_fit``): the share of inner validation prefixes
    ending in each activity whose next activity was its most frequent follower, the answer's confidence."""

    def probabilities(self, features: F) -> F:
        """Calibrated class probabilities, one row per prefix, columns in ``classes`` order."""
        return _softmax(_raw(self.booster, features, len(self.classes)), self.temperature)

    def predict(self, inputs: Mapping[str, Any]) -> Prediction:
        if self.follower_precision is not None:
            events, _ = prefix_inputs(inputs, self._columns, self.encoder)
            return self._follow_answer(events)
        _, row = encoded(inputs, self._columns, self.encoder)
        [answer] = self._answers(row)
        best = self.classes.index(str(answer.label))
        return replace(answer, explanation=top_contributions(self.booster, row, self.encoder, block=best))

    def predict_many(self, inputs: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        """``predict`` for many open cases in one call of the trees, without explanations."""
        if not inputs:
            return []
        if self.follower_precision is not None:
            return [
                replace(self._follow_answer(prefix_inputs(one, self._columns, self.encoder)[0]), explanation=())
                for one in inputs
            ]
        _, rows = encoded_many(inputs, self._columns, self.encoder)
        return self._answers(rows)

    def _follow_answer(self, events: Sequence[Event]) -> Prediction:
        """The follower table's answer (a model that fell back to it)."""
        assert self.follower_precision is not None
        last = events[-1].activity
        label = self.follower.get(last, self.most_frequent)
        confidence = self.follower_precision.get(last, self.follower_precision.get("", 0.0))
        return Prediction(
            label=label,
            value=None,
            confidence=confidence,
            accepted=confidence >= self._thresholds.get(label, 1.0),
            probabilities={label: round(confidence, 6)},
            explanation=({"feature": f"last activity = {last}", "weight": round(confidence, 6)},),
        )

    def _answers(self, rows: F) -> list[Prediction]:
        answers = []
        for probabilities in self.probabilities(rows):
            best = int(np.argmax(probabilities))
            label = self.classes[best]
            confidence = float(probabilities[best])
            ranked = np.argsort(-probabilities)[:5]
            answers.append(
                Prediction(
                    label=label,
                    value=None,
                    confidence=confidence,
                    accepted=confidence >= self._thresholds.get(label, 1.0),
                    probabilities={self.classes[int(index)]: round(float(probabilities[index]), 6) for index in ranked},
                )
            )
        return answers

    def score(self, cases: Sequence[Case]) -> dict[str, Any]:
        """Figures over every prefix of length 2 … n-1: accuracy, macro-F1, and the last-activity baseline."""
        prefixes = self.encoder.encode(cases, _eval_lengths)
        truth = _targets(cases, prefixes)
        if not truth:
            return {"accuracy": None, "macro_f1": None, "n": 0, "baseline_accuracy": None}
        baseline = _follow(self.follower, self.most_frequent, cases, prefixes)
        if self.follower_precision is not None:
            predicted = baseline
        else:
            picked = np.argmax(self.probabilities(prefixes.features), axis=1)
            predicted = [self.classes[int(index)] for index in picked]
        figures = _figures(truth, predicted)
        figures["baseline_accuracy"] = _figures(truth, baseline)["accuracy"]
        figures["baseline"] = "last activity: most frequent follower in training cases"
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


def _fit(cases: list[Case], method: str, seed: int, progress: Progress) -> NextActivityModel:
    inner_train, inner_valid = inner_split(cases, method)
    progress("encode prefixes", 0.0)
    encoder = make_encoder("base+sequence+intercase").fit(inner_train)
    views = feature_views(encoder)
    train_prefixes = encoder.encode(inner_train)
    train_names = _targets(inner_train, train_prefixes)
    classes, _ = _answerable(train_names)
    index = {name: position for position, name in enumerate(classes)}
    train_features, target = _kept(train_prefixes.features, train_names, index)
    valid_prefixes = encoder.encode(inner_valid)
    valid_names = _targets(inner_valid, valid_prefixes)
    known = np.array([name in index for name in valid_names], dtype=bool)
    valid_target = np.array([index.get(name, 0) for name in valid_names], dtype=np.int64)
    protocol = valid_prefixes.length >= 2
    if len(classes) < 2:
        raise ValueError("next-activity needs at least two different next activities in the training cases")
    # Guard: where the follower table of the inner training cases answers the inner validation prefixes at least as
    # well as the model (a log of so many activities that the most frequent ones cover few next steps, say), the model
    # is that table, as a remaining-time model that cannot beat the median is the median. The model cannot be right
    # more often than its classes hold the truth: below that ceiling, no trial is fitted.
    inner_truth = [valid_names[i] for i in np.flatnonzero(protocol)]
    inner_follower, inner_most_frequent = _baseline(inner_train)
    follower_answers = _follow(inner_follower, inner_most_frequent, inner_valid, valid_prefixes)
    inner_baseline = _figures(inner_truth, [follower_answers[i] for i in np.flatnonzero(protocol)])["accuracy"]
    guard = (inner_valid, valid_prefixes, valid_names, follower_answers, inner_baseline)
    ceiling = float(known[protocol].mean()) if protocol.any() else float(known.mean())
    if inner_baseline is not None and inner_baseline >= ceiling:
        inner = {"accuracy": None, "ceiling": round(ceiling, 6), "n": len(inner_truth), "cases": len(inner_valid)}
        return _follower_model(cases, encoder, inner, guard, {}, train_names, seed, progress)
    trials: list[tuple[str, dict[str, float] | None]] = [(DEFAULT_FEATURE_SET, setting) for setting in GRID]
    trials += [(feature_set, None) for feature_set in FEATURE_SETS[1:]]
    best: tuple[float, int, dict[str, float], Any, str] | None = None
    scores: dict[str, float] = {}
    for number, (feature_set, given) in enumerate(trials):
        progress(f"fit trial {number + 1}/{len(trials)}", 0.05 + 0.7 * number / len(trials))
        if given is None:
            assert best is not None
            setting = best[2]  # the setting chosen for the default feature set
        else:
            setting = given
        width, categorical = views[feature_set]
        params = base_params("multiclass", seed, setting, num_class=len(classes))
        booster, rounds = fit_booster(
            params,
            train_features[:, :width],
            target,
            categorical,
            valid=(valid_prefixes.features[known, :width], valid_target[known]),
        )
        raw = _raw(booster, valid_prefixes.features[:, :width], len(classes))
        hits = (np.argmax(raw, axis=1) == valid_target) & known
        accuracy = float(hits[protocol].mean()) if protocol.any() else float(hits.mean())
        scores[feature_set] = max(scores.get(feature_set, -1.0), round(accuracy, 6))
        if best is None or accuracy > best[0]:
            best = (accuracy, rounds, setting, booster, feature_set)
    assert best is not None
    accuracy, rounds, setting, booster, feature_set = best
    width = views[feature_set][0]
    raw = _raw(booster, valid_prefixes.features[:, :width], len(classes))
    temperature = _temperature(raw[known], valid_target[known])
    probabilities = _softmax(raw, temperature)
    picked = np.argmax(probabilities, axis=1)
    confidence = probabilities[np.arange(len(picked)), picked]
    correct = (picked == valid_target) & known
    pooled = threshold_for_precision(confidence, correct, TARGET_PRECISION)
    per_class: dict[str, float] = {}
    for position, name in enumerate(classes):
        chosen = picked == position
        per_class[name] = (
            threshold_for_precision(confidence[chosen], correct[chosen], TARGET_PRECISION)
            if chosen.sum() >= 20
            else pooled
        )
    inner_predicted = [classes[int(picked[i])] for i in np.flatnonzero(protocol)]
    inner = _figures(inner_truth, inner_predicted)
    inner["cases"] = len(inner_valid)
    if inner_baseline is not None and inner["accuracy"] is not None and inner_baseline >= inner["accuracy"]:
        return _follower_model(cases, encoder, inner, guard, scores, train_names, seed, progress)
    inner["baseline_accuracy"] = inner_baseline
    progress("refit on all training cases", 0.8)
    final_encoder = make_encoder(feature_set).fit(cases)
    final_prefixes = final_encoder.encode(cases)
    final_names = _targets(cases, final_prefixes)
    final_classes, coverage = _answerable(final_names)
    final_index = {name: position for position, name in enumerate(final_classes)}
    final_features, final_target = _kept(final_prefixes.features, final_names, final_index)
    params = base_params("multiclass", seed, setting, num_class=len(final_classes))
    final_booster, _ = fit_booster(
        params, final_features, final_target, final_encoder.categorical, rounds=refit_rounds(rounds)
    )
    follower, most_frequent = _baseline(cases)
    progress("fitted", 1.0)
    return NextActivityModel(
        encoder=final_encoder,
        booster=final_booster,
        classes=final_classes,
        temperature=temperature,
        follower=follower,
        most_frequent=most_frequent,
        _params={
            "model": "lightgbm multiclass",
            "fallback": False,
            "feature_set": feature_set,
            "inner_accuracy_by_feature_set": scores,
            "setting": dict(setting),
            "rounds": refit_rounds(rounds),
            "inner_rounds": rounds,
            "temperature": round(temperature, 4),
            "target_precision": TARGET_PRECISION,
            "window": final_encoder.window,
            "activities": len(final_encoder.activities),
            "counted_activities": final_encoder.n_counted,
            "classes": coverage,
            "attributes": [feature.name for feature in final_encoder.attributes],
            "seed": seed,
            "inner_validation": "last 20% of training cases in split order",
        },
        _metrics={"inner": inner},
        _thresholds={name: round(per_class.get(name, pooled), 6) for name in final_classes},
    )


def _follower_model(
    cases: list[Case],
    encoder: PrefixEncoder,
    inner: dict[str, Any],
    guard: tuple[list[Case], Prefixes, list[str], list[str], float | None],
    scores: dict[str, float],
    train_names: Sequence[str],
    seed: int,
    progress: Progress,
) -> NextActivityModel:
    """The follower table of all training cases as the model (see the guard in ``_fit``)."""
    inner_valid, valid_prefixes, valid_names, follower_answers, inner_baseline = guard
    follower, most_frequent = _baseline(cases)
    answers = set(follower.values()) | {most_frequent}
    progress("fitted", 1.0)
    return NextActivityModel(
        encoder=encoder,
        booster=None,
        classes=tuple(sorted(answers)),
        temperature=1.0,
        follower=follower,
        most_frequent=most_frequent,
        follower_precision=_follower_precision(inner_valid, valid_prefixes, valid_names, follower_answers),
        _params={
            "model": "follower table: the most frequent next activity after the last one",
            "fallback": True,
            "inner_model_accuracy": inner["accuracy"],
            "inner_accuracy_by_feature_set": scores,
            "inner_follower_accuracy": inner_baseline,
            "target_precision": TARGET_PRECISION,
            "activities": len(encoder.activities),
            "classes": _answerable(train_names)[1],
            "seed": seed,
            "inner_validation": "last 20% of training cases in split order",
        },
        _metrics={"inner": {**inner, "accuracy": inner_baseline, "baseline_accuracy": inner_baseline}},
        _thresholds=dict.fromkeys(answers, TARGET_PRECISION),
    )


def train_next_activity(
    path: Path | str,
    *,
    case: str | None = None,
    activity: str | None = None,
    timestamp: str | None = None,
    split: str = "tax2017",
    seed: int = 0,
    progress: Progress = no_progress,
) -> NextActivityModel:
    """Train on the split's training cases; ``metrics`` holds held-out figures (Tax et al. protocol) and inner ones."""
    log = load_log(path, case, activity, timestamp, progress)

    def fit(cases: list[Case], method: str, step: Progress) -> NextActivityModel:
        return _fit(cases, method, seed, step)

    model, held_out = run_protocol(log, split, seed, progress, fit, lambda trained, cases: trained.score(cases))
    model.record_protocol(held_out, log.columns, split, "lengths 2 … n-1 of each held-out case")
    return model
