"""Classification figures from predicted probabilities: accuracy, macro-F1, Brier, reliability, per-class counts.

Every function takes true label indices (``-1`` for a label the model never saw, which always counts as wrong)
and a row-per-example probability matrix, and returns plain floats and lists so the result is JSON-serialisable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def brier(truth: np.ndarray, probabilities: np.ndarray) -> float:
    """Multi-class Brier score: mean over rows of the squared distance to the one-hot truth (0 is perfect, 2 worst)."""
    onehot = np.zeros_like(probabilities)
    seen = truth >= 0
    onehot[np.flatnonzero(seen), truth[seen]] = 1.0
    return float(np.mean(np.sum((probabilities - onehot) ** 2, axis=1))) if len(truth) else 0.0


def reliability(truth: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> list[dict[str, float | int]]:
    """Mean confidence against accuracy of the predicted label, in equal-width confidence bins (empty bins left out)."""
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    correct = predicted == truth
    edges = np.minimum((confidence * bins).astype(int), bins - 1)
    curve: list[dict[str, float | int]] = []
    for b in range(bins):
        mask = edges == b
        if mask.any():
            curve.append(
                {
                    "confidence": round(float(confidence[mask].mean()), 4),
                    "accuracy": round(float(correct[mask].mean()), 4),
                    "n": int(mask.sum()),
                }
            )
    return curve


def coverage_at_precision(correct: np.ndarray, confidence: np.ndarray, target: float) -> float:
    """The largest share of rows answerable, most confident first, while the answered rows keep ``target`` precision."""
    if len(correct) == 0:
        return 0.0
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    precision = hits / np.arange(1, len(order) + 1)
    # Only cut between distinct confidences: rows with equal confidence are answered together or not at all.
    ends = np.r_[confidence[order][1:] != confidence[order][:-1], True]
    ok = np.flatnonzero((precision >= target) & ends)
    return float((ok[-1] + 1) / len(order)) if len(ok) else 0.0


def summary(
    truth: np.ndarray,
    probabilities: np.ndarray,
    classes: Sequence[str],
    thresholds: Sequence[float],
    *,
    target_precision: float,
) -> dict[str, Any]:
    """The figures ``evaluate`` and training report for one set of predictions."""
    n = len(truth)
    predicted = probabilities.argmax(axis=1) if n else np.zeros(0, dtype=int)
    confidence = probabilities.max(axis=1) if n else np.zeros(0)
    correct = predicted == truth
    accepted = confidence >= np.asarray(thresholds)[predicted] if n else np.zeros(0, dtype=bool)
    per_class: dict[str, dict[str, float | int]] = {}
    f1s = []
    for k, name in enumerate(classes):
        tp = int(np.sum(correct & (predicted == k)))
        n_pred = int(np.sum(predicted == k))
        support = int(np.sum(truth == k))
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if support or n_pred:
            f1s.append(f1)
        taken = accepted & (predicted == k)
        per_class[name] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": support,
            "threshold": round(float(thresholds[k]), 6),
            "precision_at_threshold": round(float(correct[taken].mean()), 4) if taken.any() else 0.0,
            "accepted": int(taken.sum()),
        }
    unseen = int(np.sum(truth < 0))
    if unseen:
        # Labels the model cannot predict still count against macro-F1 (recall 0, F1 0).
        f1s.extend([0.0])
    key = f"coverage_at_precision_{target_precision:g}"
    figures: dict[str, Any] = {
        "n": n,
        "accuracy": round(float(correct.mean()), 4) if n else 0.0,
        "macro_f1": round(float(np.mean(f1s)), 4) if f1s else 0.0,
        "brier": round(brier(truth, probabilities), 4),
        "coverage_at_precision_0.95": round(coverage_at_precision(correct, confidence, 0.95), 4),
        key: round(coverage_at_precision(correct, confidence, target_precision), 4),
        "precision_at_thresholds": round(float(correct[accepted].mean()), 4) if accepted.any() else 0.0,
        "coverage_at_thresholds": round(float(accepted.mean()), 4) if n else 0.0,
        "reliability": reliability(truth, probabilities) if n else [],
        "per_class": per_class,
    }
    if unseen:
        figures["rows_with_unknown_label"] = unseen
    return figures
