"""Models Opsrail trains and serves: ticket classification and predictions over event logs (CPU only).

The training functions load scikit-learn and LightGBM, which take about a second to import; they are resolved on
first use (PEP 562) so that commands and servers that never train start without that cost.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from opsrail.ml._labelled_csv import TEXT_JOINER
from opsrail.ml._types import Prediction, PredictsMany, Progress, TrainedModel, no_progress

if TYPE_CHECKING:
    from opsrail.ml._eventlog import EventLog, EventLogError, read_event_log
    from opsrail.ml._eventlog_writer import format_of, writing_event_log
    from opsrail.ml._labelled_csv import TrainingDataError, labelled_records
    from opsrail.ml._next_activity import NextActivityModel, train_next_activity
    from opsrail.ml._remaining_time import RemainingTimeModel, train_remaining_time
    from opsrail.ml._sla_breach import SlaBreachModel, train_sla_breach
    from opsrail.ml._text import TextClassifier, fit_text_classifier, train_text_classifier

_LAZY = {
    "EventLog": "opsrail.ml._eventlog",
    "EventLogError": "opsrail.ml._eventlog",
    "read_event_log": "opsrail.ml._eventlog",
    "format_of": "opsrail.ml._eventlog_writer",
    "writing_event_log": "opsrail.ml._eventlog_writer",
    "NextActivityModel": "opsrail.ml._next_activity",
    "train_next_activity": "opsrail.ml._next_activity",
    "RemainingTimeModel": "opsrail.ml._remaining_time",
    "train_remaining_time": "opsrail.ml._remaining_time",
    "SlaBreachModel": "opsrail.ml._sla_breach",
    "train_sla_breach": "opsrail.ml._sla_breach",
    "TextClassifier": "opsrail.ml._text",
    "TrainingDataError": "opsrail.ml._labelled_csv",
    "labelled_records": "opsrail.ml._labelled_csv",
    "fit_text_classifier": "opsrail.ml._text",
    "train_text_classifier": "opsrail.ml._text",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'opsrail.ml' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "TEXT_JOINER",
    "EventLog",
    "EventLogError",
    "NextActivityModel",
    "Prediction",
    "PredictsMany",
    "Progress",
    "RemainingTimeModel",
    "SlaBreachModel",
    "TextClassifier",
    "TrainedModel",
    "TrainingDataError",
    "fit_text_classifier",
    "format_of",
    "labelled_records",
    "no_progress",
    "read_event_log",
    "train_next_activity",
    "train_remaining_time",
    "train_sla_breach",
    "train_text_classifier",
    "writing_event_log",
]
