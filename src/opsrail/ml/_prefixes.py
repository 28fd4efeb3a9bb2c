"""Prefix features: turning the first k events of a case into one row of numbers a tree model can learn from.

The encoder is fitted on training cases only and learns what generalises across logs, without knowing any
activity or attribute name in advance:

* the activity vocabulary (codes ``2…``; ``1`` is an activity never seen in training, ``0`` is "no event");
* the last ``window`` activities (categorical codes), how often each of the ``max_counted`` most frequent activities
  occurred (one more column counts the rest and unseen ones: a log of a thousand fine-grained activities would
  otherwise spend a thousand mostly-zero columns on every prefix), how many times the last activity repeated in a
  row, and how many distinct activities the prefix has;
* time: prefix length, elapsed time since the case started, the last two gaps between events, the mean gap, hour
  of day and weekday of the first and the last event (in the time the log records: offsets are applied, naive
  times are UTC), and when the case started and its last event happened (seconds since the epoch: processes drift,
  and a tree can tell early cases from late ones; beyond the training period it treats times as the latest seen);
* sequence features (``_features.SequenceFeatures``, on by default; ``sequence=None`` leaves them out): runs of
  the same activity, how long ago each frequent activity last happened, more gaps, frequent bigram counts and how
  busy the last event's day was, appended after the attributes;
* inter-case features (``_intercase.InterCaseFeatures``, off by default; ``intercase=InterCaseFeatures()``): the
  state of the system at the prefix's last event (open cases, recent load, recent case durations), computed from
  the log being encoded (or ``state``), events at or before that moment only; appended last. ``encode_one`` takes
  them from a ``context`` mapping and falls back to the training medians;
* attributes: each case attribute, and each event attribute of the last event, that is numeric (most values read
  as numbers and there are many distinct ones) or categorical with a few frequent values (the ``max_values`` most
  frequent values seen at least ``min_count`` times, the rest coded "other"). Identifiers and free text fall out
  because no value is frequent enough. Date-valued attributes are not used: logs often fill them in when a case
  ends (end dates, resolution dates), which would leak the answer. Nor are attributes named ``outcome:…`` (or
  ``case:outcome:…``): by that convention they say how the case ended (``opsrail insights export`` writes a run's
  final status and end that way), which a prefix cannot know.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from opsrail.ml._eventlog import Case, Event
from opsrail.ml._features import SequenceFeatures
from opsrail.ml._intercase import InterCaseFeatures, SystemState

__all__ = ["AttributeFeature", "PrefixEncoder", "Prefixes", "prefix_lengths"]

PAD = 0
UNSEEN = 1
_DAY = 86_400.0
_BASE = (
    "prefix_length",
    "elapsed_seconds",
    "since_previous_seconds",
    "previous_gap_seconds",
    "mean_gap_seconds",
    "hour_of_day",
    "weekday",
    "start_hour_of_day",
    "start_weekday",
    "repeat_run",
    "distinct_activities",
    "case_start_time",
    "last_event_time",
)


@dataclass(frozen=True, slots=True)
class AttributeFeature:
    """One attribute used as a feature: where it lives (``case`` or ``event``), its kind and kept values."""

    key: str
    level: str
    kind: str
    values: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``case:region`` (a case attribute's key, which says it), ``case tier`` or ``last event org:resource``."""
        if self.level == "case":
            return self.key if self.key.startswith("case:") else f"case {self.key}"
        return f"last event {self.key}"

    def encode(self, value: Any) -> float:
        if value is None:
            return math.nan
        if self.kind == "numeric":
            number = _number(value)
            return math.nan if number is None else number
        text = str(value)
        try:
            return float(self.values.index(text) + 1)
        except ValueError:
            return 0.0


@dataclass(slots=True)
class Prefixes:
    """Encoded prefixes: feature matrix, which case each row comes from (index into the input) and its length."""

    features: npt.NDArray[np.float64]
    case_index: npt.NDArray[np.int64]
    length: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.features.shape[0])


def prefix_lengths(n_events: int, *, first: int = 1, last_offset: int = 1) -> range:
    """Prefix lengths ``first … n - last_offset`` of a case with ``n_events`` events (empty when none)."""
    return range(first, n_events - last_offset + 1)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or len(value) < 8 or _number(value) is not None:
        return False
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        return False
    return True


def is_outcome(key: str) -> bool:
    """Whether an attribute says how the case ended (``outcome:…``, ``case:outcome:…``): never a feature."""
    return key.removeprefix("case:").startswith("outcome:")


@dataclass
class PrefixEncoder:
    """Learns the activity vocabulary and usable attributes from training cases, then encodes prefixes."""

    window: int = 5
    max_values: int = 20
    min_count: int = 20
    max_attributes: int = 40
    max_counted: int = 100
    activities: tuple[str, ...] = ()
    counted: int | None = None  # activities with a count column of their own, set by ``fit``
    attributes: tuple[AttributeFeature, ...] = ()
    sequence: SequenceFeatures | None = field(default_factory=SequenceFeatures)
    intercase: InterCaseFeatures | None = None
    _codes: dict[str, int] = field(default_factory=dict, repr=False)

    def fit(self, cases: Sequence[Case], *, exclude: Iterable[str] = ()) -> PrefixEncoder:
        counts = Counter(event.activity for case in cases for event in case.events)
        self.activities = tuple(sorted(counts, key=lambda name: (-counts[name], name)))
        self._codes = {name: index + 2 for index, name in enumerate(self.activities)}
        self.counted = min(len(self.activities), self.max_counted)
        if self.sequence is not None:
            self.sequence.fit(
                [[self._codes[event.activity] for event in case.events] for case in cases],
                [self._codes[name] for name in self.activities],
            )
        if self._intercase is not None:
            self._intercase.fit(cases)
        skip = set(exclude)
        found: list[AttributeFeature] = []
        case_values: dict[str, list[Any]] = {}
        for case in cases:
            for key, value in case.attributes.items():
                case_values.setdefault(key, []).append(value)
        event_values: dict[str, list[Any]] = {}
        for case in cases:
            for event in case.events:
                for key, value in event.attributes.items():
                    event_values.setdefault(key, []).append(value)
        for level, table in (("case", case_values), ("event", event_values)):
            for key in sorted(table):
                if key in skip or is_outcome(key):
                    continue
                feature = self._learn(key, level, table[key])
                if feature is not None:
                    found.append(feature)
        self.attributes = tuple(found[: self.max_attributes])
        return self

    def _learn(self, key: str, level: str, values: list[Any]) -> AttributeFeature | None:
        present = [value for value in values if value is not None and value != ""]
        if not present:
            return None
        sample = present[:: max(1, len(present) // 200)]
        if sum(_is_date(value) for value in sample) >= 0.5 * len(sample):
            return None
        numeric = sum(_number(value) is not None for value in sample)
        counts = Counter(str(value) for value in present)
        if numeric >= 0.98 * len(sample) and len(counts) > self.max_values:
            return AttributeFeature(key, level, "numeric")
        threshold = max(self.min_count, int(0.002 * len(present)))
        kept = tuple(value for value, count in counts.most_common(self.max_values) if count >= threshold)
        if not kept or (len(kept) == 1 and counts[kept[0]] == len(values)):
            return None  # nothing frequent (an identifier, free text) or one value everywhere
        return AttributeFeature(key, level, "categorical", kept)

    # --------------------------------------------------------------------------------------------- layout

    @property
    def feature_names(self) -> list[str]:
        names = list(_BASE)
        names += [f"activity[-{offset}]" for offset in range(1, self.window + 1)]
        counted = self.n_counted
        rest = "count unseen activities" if counted == len(self.activities) else "count other or unseen activities"
        names += [f"count {name}" for name in self.activities[:counted]] + [rest]
        names += [feature.name for feature in self.attributes]
        if self.sequence is not None:
            names += self.sequence.names({code: self.activity_name(code) for code in range(len(self.activities) + 2)})
        if self._intercase is not None:
            names += self._intercase.names()
        return names

    @property
    def n_counted(self) -> int:
        """How many activities have a count column of their own (the most frequent ones)."""
        counted = getattr(self, "counted", None)  # encoders pickled before the cap count every activity
        return len(self.activities) if counted is None else int(counted)

    @property
    def _intercase(self) -> InterCaseFeatures | None:
        return getattr(self, "intercase", None)  # encoders pickled before inter-case features have none

    @property
    def feature_set(self) -> str:
        """``base``, ``base+sequence`` or ``base+sequence+intercase`` (``base+intercase`` without sequences)."""
        return (
            "base"
            + ("+sequence" if self.sequence is not None else "")
            + ("+intercase" if self._intercase is not None else "")
        )

    @property
    def _sequence_at(self) -> int:
        return len(_BASE) + self.window + self.n_counted + 1 + len(self.attributes)

    @property
    def categorical(self) -> list[int]:
        """Column indices of categorical features (activity codes and categorical attributes)."""
        base = len(_BASE)
        out = list(range(base, base + self.window))
        offset = base + self.window + self.n_counted + 1
        out += [offset + index for index, item in enumerate(self.attributes) if item.kind == "categorical"]
        if self.sequence is not None:
            out += [self._sequence_at + index for index in self.sequence.categorical]
        return out

    def code(self, activity: str) -> int:
        return self._codes.get(activity, UNSEEN)

    def activity_name(self, code: int) -> str:
        if code == PAD:
            return "(none)"
        if code == UNSEEN:
            return "(unseen)"
        return self.activities[code - 2]

    def describe(self, column: int, value: float) -> str:
        """A readable value of feature ``column`` (activity names and attribute values instead of codes)."""
        base = len(_BASE)
        if base <= column < base + self.window:
            return self.activity_name(int(value)) if not math.isnan(value) else "(none)"
        offset = base + self.window + self.n_counted + 1
        at = self._sequence_at
        if self.sequence is not None and column >= at:
            if column - at in self.sequence.categorical and not math.isnan(value):
                return self.activity_name(int(value))
            return f"{value:.6g}"
        if column >= offset and not math.isnan(value):
            feature = self.attributes[column - offset]
            if feature.kind == "categorical":
                return feature.values[int(value) - 1] if value >= 1 else "(other)"
        return f"{value:.6g}"

    # ------------------------------------------------------------------------------------------- encoding

    def encode(
        self,
        cases: Sequence[Case],
        lengths: Callable[[int], range] = prefix_lengths,
        *,
        state: SystemState | None = None,
    ) -> Prefixes:
        """Encode, for each case, the prefixes whose lengths ``lengths(len(case.events))`` yields.

        Inter-case columns (when enabled) come from ``state``, by default the state of ``cases`` themselves.
        """
        total = sum(len(lengths(len(case.events))) for case in cases)
        width = len(self.feature_names)
        features = np.full((total, width), np.nan, dtype=np.float64)
        case_index = np.zeros(total, dtype=np.int64)
        length = np.zeros(total, dtype=np.int64)
        row = 0
        for number, case in enumerate(cases):
            wanted = lengths(len(case.events))
            if not len(wanted):
                continue
            for k, values in self._rows(case.events, case.attributes, wanted):
                features[row] = values
                case_index[row] = number
                length[row] = k
                row += 1
        intercase = self._intercase
        if intercase is not None and total:
            if state is None:
                state = SystemState(cases)
            last = [cases[int(c)].events[int(k) - 1] for c, k in zip(case_index, length, strict=True)]
            times = np.fromiter((event.timestamp for event in last), dtype=np.float64, count=len(last))
            features[:, width - intercase.width :] = state.features(times, [event.activity for event in last])
        return Prefixes(features, case_index, length)

    def encode_one(
        self,
        events: Sequence[Event],
        case_attributes: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
    ) -> npt.NDArray[np.float64]:
        """One row for an open case's events so far (at least one event).

        ``context`` gives the inter-case values (``_intercase.INTERCASE_NAMES``) at the last event, when the model
        uses them; missing ones are the training medians.
        """
        if not events:
            raise ValueError("a prefix needs at least one event")
        rows = list(self._rows(events, case_attributes, range(len(events), len(events) + 1)))
        row = rows[0][1]
        intercase = self._intercase
        if intercase is not None:
            row[len(row) - intercase.width :] = intercase.from_context(context)
        return row.reshape(1, -1)

    def _rows(
        self, events: Sequence[Event], case_attributes: Mapping[str, Any], wanted: range
    ) -> Iterable[tuple[int, npt.NDArray[np.float64]]]:
        counted = self.n_counted
        base = len(_BASE)
        window = self.window
        count_at = base + window
        attr_at = count_at + counted + 1
        sequence_at = attr_at + len(self.attributes)
        width = (
            sequence_at
            + (self.sequence.width if self.sequence is not None else 0)
            + (self._intercase.width if self._intercase is not None else 0)
        )
        state = self.sequence.state() if self.sequence is not None else None
        counts = np.zeros(counted + 1, dtype=np.float64)
        seen: set[int] = set()
        constant = np.full(width, np.nan, dtype=np.float64)
        for index, feature in enumerate(self.attributes):
            if feature.level == "case":
                constant[attr_at + index] = feature.encode(case_attributes.get(feature.key))
        codes: list[int] = []
        start = events[0].timestamp
        run = 0
        last_wanted = wanted[-1]
        first_wanted = wanted[0]
        for position, event in enumerate(events[:last_wanted], start=1):
            code = self.code(event.activity)
            run = run + 1 if codes and codes[-1] == code else 1
            codes.append(code)
            if state is not None:
                state.push(code, event.timestamp)
            counts[code - 2 if 2 <= code < counted + 2 else counted] += 1
            seen.add(code)
            if position < first_wanted:
                continue
            values = constant.copy()
            now = event.timestamp
            values[0] = position
            values[1] = now - start
            if position > 1:
                values[2] = now - events[position - 2].timestamp
                values[4] = (now - start) / (position - 1)
            if position > 2:
                values[3] = events[position - 2].timestamp - events[position - 3].timestamp
            values[5] = (now % _DAY) / 3600.0
            values[6] = ((now // _DAY) + 3) % 7
            values[7] = (start % _DAY) / 3600.0
            values[8] = ((start // _DAY) + 3) % 7
            values[9] = run
            values[10] = float(len(seen))
            values[11] = start
            values[12] = now
            for offset in range(1, window + 1):
                values[base + offset - 1] = codes[-offset] if offset <= len(codes) else PAD
            values[count_at:attr_at] = counts
            for index, feature in enumerate(self.attributes):
                if feature.level == "event":
                    values[attr_at + index] = feature.encode(event.attributes.get(feature.key))
            if state is not None:
                state.fill(values, sequence_at)
            yield position, values
