"""What every trained model shares: a prediction, a progress callback, and the model protocol the registry keeps.

A model is trained from a file (a CSV of tickets, an event log), keeps the column names it was trained with, and
can score one input at a time (``predict``) or a whole file with the same columns (``evaluate``). It must be
picklable: the registry stores it as bytes next to its SHA-256 and loads only artifacts whose hash matches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

Progress = Callable[[str, float], None]
"""``progress(stage, fraction)``: a stage name ("vectorise", "fit fold 2/5", …) and how far it is, 0.0 to 1.0."""


def no_progress(stage: str, fraction: float) -> None:
    """The default progress callback: says nothing."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """One model answer.

    ``label`` is the predicted class (classifiers, including binary ones such as SLA breach: ``"breach"`` or
    ``"ok"``); ``value`` is the predicted number for regressors (remaining time, in seconds) and the positive-class
    probability for binary classifiers. ``confidence`` is the calibrated probability of ``label`` (for a regressor,
    a 0 to 1 confidence proxy the model documents). ``accepted`` is True when ``confidence`` reaches the threshold the
    model chose for ``label`` on training data only (the per-class threshold for the target precision); a caller
    sends a prediction that is not accepted to a human. ``explanation`` lists the features that pushed the answer
    most, as ``{"feature": str, "weight": float}`` records, strongest first.
    """

    label: str | None
    value: float | None
    confidence: float
    accepted: bool
    probabilities: Mapping[str, float] = field(default_factory=dict)
    explanation: tuple[Mapping[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "value": self.value,
            "confidence": self.confidence,
            "accepted": self.accepted,
            "probabilities": dict(self.probabilities),
            "explanation": [dict(item) for item in self.explanation],
        }


@runtime_checkable
class TrainedModel(Protocol):
    """A trained, picklable model the registry can store, load, serve and re-evaluate."""

    task: ClassVar[str]
    """``text-classifier``, ``next-activity``, ``remaining-time`` or ``sla-breach``."""

    @property
    def params(self) -> Mapping[str, Any]:
        """Settings it was trained with (including those chosen on an inner validation split)."""

    @property
    def metrics(self) -> Mapping[str, Any]:
        """Figures measured at training time (held-out split, and inner validation), JSON-serialisable."""

    @property
    def columns(self) -> Mapping[str, str]:
        """The input columns it was trained on (``text``/``label``, or ``case``/``activity``/``timestamp``)."""

    @property
    def thresholds(self) -> Mapping[str, float]:
        """Per-class confidence thresholds chosen on training data (empty for regressors)."""

    def predict(self, inputs: Mapping[str, Any]) -> Prediction:
        """Score one input: ``{"text": …}`` for text, ``{"events": [{"activity", "timestamp", …}, …]}`` for logs."""

    def evaluate(self, path: Path, *, progress: Progress = no_progress) -> dict[str, Any]:
        """Score every row or case prefix of a file with the training columns; JSON-serialisable figures."""


@runtime_checkable
class PredictsMany(Protocol):
    """A model that scores many inputs at once, faster than one at a time, without explanations."""

    def predict_many(self, inputs: Sequence[Mapping[str, Any]]) -> list[Prediction]:
        """One prediction per input, in order, each as ``predict`` gives it but with an empty ``explanation``."""
