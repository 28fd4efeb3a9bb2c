"""Per-class confidence thresholds for selective classification, chosen on out-of-fold predictions only.

The goal is the most answered tickets at a target overall precision. One global cut on confidence wastes coverage
when classes are calibrated differently (a clear-cut class is right at 0.6, a muddled one only at 0.9). So, per
predicted class, an isotonic fit of "was the prediction right" against confidence estimates each row's chance of
being right; rows are then answered from the most to the least likely right while the running precision stays at
the target. Because each isotonic fit is monotone in confidence, the answered set of a class is exactly "confidence
at or above a threshold", which is what the model stores and ``predict`` applies.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression

NEVER = 1.0
"""Threshold of a class whose predictions never reach the target precision (a human sees them all)."""

_MIN_ROWS_FOR_OWN_FIT = 20
"""Below this many out-of-fold predictions a class shares the fit of all classes: its own curve would be noise."""


def _estimated_correctness(predicted: np.ndarray, confidence: np.ndarray, correct: np.ndarray) -> np.ndarray:
    shared = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(confidence, correct)
    estimate = np.asarray(shared.predict(confidence), dtype=float)
    for k in np.unique(predicted):
        mask = predicted == k
        if mask.sum() >= _MIN_ROWS_FOR_OWN_FIT:
            own = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(confidence[mask], correct[mask])
            estimate[mask] = own.predict(confidence[mask])
    return estimate


def _lower_bound(precision: np.ndarray, n: np.ndarray, z: float = 1.645) -> np.ndarray:
    """One-sided 95% Wilson lower bound of a precision measured on ``n`` rows.

    Thresholds are cut where the bound, not the point estimate, reaches the target: the out-of-fold estimate is
    itself noisy, and the deployed model is scored on tickets that the out-of-fold models never saw either.
    """
    centre = precision + z * z / (2 * n)
    spread = z * np.sqrt(precision * (1 - precision) / n + z * z / (4 * n * n))
    bound: np.ndarray = (centre - spread) / (1 + z * z / n)
    return bound


def choose_thresholds(truth: np.ndarray, probabilities: np.ndarray, target_precision: float) -> list[float]:
    """One confidence threshold per class so that answered rows reach ``target_precision`` at the widest coverage."""
    n_classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    correct = (predicted == truth).astype(float)
    if len(truth) == 0:
        return [NEVER] * n_classes
    estimate = _estimated_correctness(predicted, confidence, correct)
    # Rank by estimated correctness, ties broken by confidence, and cut only between distinct estimates.
    order = np.lexsort((-confidence, -estimate))
    answered = np.arange(1, len(order) + 1)
    precision = _lower_bound(np.cumsum(correct[order]) / answered, answered)
    ranked = estimate[order]
    ends = np.r_[ranked[1:] != ranked[:-1], True]
    ok = np.flatnonzero((precision >= target_precision) & ends)
    if len(ok) == 0:
        return [NEVER] * n_classes
    floor = ranked[ok[-1]]
    thresholds = []
    for k in range(n_classes):
        taken = (predicted == k) & (estimate >= floor)
        thresholds.append(float(confidence[taken].min()) if taken.any() else NEVER)
    return thresholds
