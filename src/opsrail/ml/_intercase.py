"""Inter-case features: the state of the whole system at the moment of a prefix's last event.

A prefix says what happened in one case; how busy the process was at that moment says something about how long
the case will wait and what comes next. ``SystemState`` indexes a set of cases (the training log when training,
the log being scored when scoring) in sorted arrays and answers, for a moment ``t`` and the activity of the
prefix's last event, from events at or before ``t`` only (what a running system knows at ``t``):

* ``open_cases``: cases started at or before ``t`` and not yet ended. A case has *ended* once its last event lies
  strictly before ``t``; a case whose last event is later (or at ``t``) counts as open. Cases named in
  ``unfinished`` never end (the open cases of a log extracted from a running system);
* ``events_last_hour`` / ``_day`` / ``_week``: events of all cases in ``(t - window, t]``;
* ``cases_started_last_day`` / ``_week``: cases whose first event lies in ``(t - window, t]``;
* ``open_cases_same_activity``: open cases whose latest event at or before ``t`` has the prefix's last activity;
* ``recent_median_duration_seconds``: the median duration (first to last event) of the cases that ended in the
  30 days up to ``t`` (NaN when none did).

Counts include the prefix's own case. Every query is a ``numpy.searchsorted`` on sorted arrays, so a log of a
quarter of a million events is indexed and queried in about two seconds. Removing every event after ``t`` (and
marking the cases cut that way as unfinished) does not change a feature computed at ``t``.

For one open case scored alone (``predict``), the caller passes the same values under these names in
``{"context": {...}}``; ``InterCaseFeatures.defaults`` (medians over the training prefixes) fill the missing ones.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from opsrail.ml._eventlog import Case

__all__ = ["INTERCASE_NAMES", "InterCaseFeatures", "SystemState"]

HOUR = 3_600.0
DAY = 86_400.0
WEEK = 7 * DAY
RECENT = 30 * DAY
INTERCASE_NAMES = (
    "open_cases",
    "events_last_hour",
    "events_last_day",
    "events_last_week",
    "cases_started_last_day",
    "cases_started_last_week",
    "open_cases_same_activity",
    "recent_median_duration_seconds",
)
F = npt.NDArray[np.float64]


class SystemState:
    """Sorted arrays over a set of cases, queried at moments ``t`` with ``features(times, activities)``."""

    def __init__(self, cases: Sequence[Case], *, unfinished: Collection[str] = ()) -> None:
        open_ids = set(unfinished)
        stamps: list[float] = []
        leaves: list[float] = []
        names: list[str] = []
        starts: list[float] = []
        ends: list[float] = []
        durations: list[float] = []
        for case in cases:
            events = case.events
            if not events:
                continue
            finished = case.case_id not in open_ids
            starts.append(events[0].timestamp)
            last = events[-1].timestamp
            if finished:
                ends.append(float(np.nextafter(last, np.inf)))  # known to have ended from just after its last event
                durations.append(last - events[0].timestamp)
            for position, event in enumerate(events):
                stamps.append(event.timestamp)
                names.append(event.activity)
                if position + 1 < len(events):
                    leaves.append(events[position + 1].timestamp)
                else:
                    leaves.append(float(np.nextafter(last, np.inf)) if finished else np.inf)
        self._events = np.sort(np.asarray(stamps, dtype=np.float64))
        self._starts = np.sort(np.asarray(starts, dtype=np.float64))
        end_array = np.asarray(ends, dtype=np.float64)
        order = np.argsort(end_array, kind="stable")
        self._ends = end_array[order]
        self._durations = np.asarray(durations, dtype=np.float64)[order]
        vocabulary = sorted(set(names))
        self._activity = {name: index for index, name in enumerate(vocabulary)}
        ids = np.asarray([self._activity[name] for name in names], dtype=np.int64)
        enter_all = np.asarray(stamps, dtype=np.float64)
        leave_all = np.asarray(leaves, dtype=np.float64)
        self._enter: list[F] = []
        self._leave: list[F] = []
        for index in range(len(vocabulary)):
            chosen = ids == index
            self._enter.append(np.sort(enter_all[chosen]))
            self._leave.append(np.sort(leave_all[chosen]))

    def features(self, times: F, activities: Sequence[str]) -> F:
        """One row per query: the ``INTERCASE_NAMES`` values at ``times[i]`` for last activity ``activities[i]``."""
        t = np.asarray(times, dtype=np.float64)
        out = np.full((len(t), len(INTERCASE_NAMES)), np.nan, dtype=np.float64)
        if len(t) == 0:
            return out
        started = np.searchsorted(self._starts, t, side="right")
        ended = np.searchsorted(self._ends, t, side="right")
        out[:, 0] = started - ended
        seen = np.searchsorted(self._events, t, side="right")
        for column, window in ((1, HOUR), (2, DAY), (3, WEEK)):
            out[:, column] = seen - np.searchsorted(self._events, t - window, side="right")
        for column, window in ((4, DAY), (5, WEEK)):
            out[:, column] = started - np.searchsorted(self._starts, t - window, side="right")
        codes = np.asarray([self._activity.get(name, -1) for name in activities], dtype=np.int64)
        same = np.zeros(len(t), dtype=np.float64)
        for code in np.unique(codes):
            if code < 0:
                continue
            rows = np.flatnonzero(codes == code)
            entered = np.searchsorted(self._enter[int(code)], t[rows], side="right")
            left = np.searchsorted(self._leave[int(code)], t[rows], side="right")
            same[rows] = entered - left
        out[:, 6] = same
        first = np.searchsorted(self._ends, t - RECENT, side="right")
        # both ends of the window only move forward with t, so there are at most twice as many distinct windows as cases
        keys = first.astype(np.int64) * (len(self._ends) + 1) + ended.astype(np.int64)
        unique, inverse = np.unique(keys, return_inverse=True)
        medians = np.full(len(unique), np.nan, dtype=np.float64)
        durations = self._durations
        for number, key in enumerate(unique.tolist()):
            low, high = divmod(key, len(self._ends) + 1)
            if high > low:
                medians[number] = float(np.median(durations[low:high]))
        out[:, 7] = medians[np.asarray(inverse).reshape(-1)]
        return out


@dataclass
class InterCaseFeatures:
    """The inter-case columns of a ``PrefixEncoder`` and their fallback values (training medians)."""

    defaults: tuple[float, ...] = ()

    @property
    def width(self) -> int:
        return len(INTERCASE_NAMES)

    def names(self) -> list[str]:
        return [f"system {name}" for name in INTERCASE_NAMES]

    def fit(self, cases: Sequence[Case]) -> InterCaseFeatures:
        """Remember the median of every column over all prefixes of ``cases`` (the ``predict`` fallback)."""
        state = SystemState(cases)
        times = np.asarray([event.timestamp for case in cases for event in case.events], dtype=np.float64)
        names = [event.activity for case in cases for event in case.events]
        values = state.features(times, names)
        medians = []
        for column in range(values.shape[1]):
            finite = values[:, column][np.isfinite(values[:, column])]
            medians.append(float(np.median(finite)) if len(finite) else float("nan"))
        self.defaults = tuple(medians)
        return self

    def from_context(self, context: Mapping[str, object] | None) -> F:
        """The columns for one prefix from caller-given ``context`` values, training medians for the rest."""
        out = np.asarray(self.defaults or [np.nan] * self.width, dtype=np.float64).copy()
        if not context:
            return out
        for column, name in enumerate(INTERCASE_NAMES):
            value = context.get(name)
            if value is None or isinstance(value, bool):
                continue
            try:
                number = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError) as error:
                raise ValueError(f"context value {name!r} must be a number, got {value!r}") from error
            out[column] = number
        return out
