"""Sequence features of a prefix beyond its last few activities: runs, recency, gaps, frequent bigrams, day load.

``PrefixEncoder`` appends these columns after its own. They are learned from training cases only and name no
activity: activities are the encoder's codes (``2…`` known, ``1`` unseen, ``0`` none) and bigrams are the most
frequent pairs of consecutive activities in the training cases.

* **runs**: the prefix as runs of the same activity (``a a a b b`` is ``a x3, b x2``); the time the current run has
  lasted and its mean gap, the activities, lengths and durations of the previous ``runs`` runs, and how many runs
  the prefix has. Logs with self-loops (a call repeated until someone answers) keep most of their history here,
  where a window of the last five events sees one activity five times.
* **recency**: per activity (the ``recency`` most frequent), how many events ago and how long ago it last happened.
* **gaps**: the gaps between the last ``gaps`` events (the encoder already has the last two).
* **bigrams**: how often each of the ``bigrams`` most frequent pairs of consecutive training activities occurs.
* **day**: how many events the case had on the calendar day of its last event, and seconds since the previous
  calendar day's last event of the case (NaN when none).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["SequenceFeatures", "SequenceState"]

_DAY = 86_400.0
F = npt.NDArray[np.float64]


@dataclass
class SequenceFeatures:
    """Which sequence features to compute and what was learned for them (frequent activities and bigrams)."""

    runs: int = 3
    recency: int = 20
    gaps: int = 5
    bigrams: int = 40
    day: bool = True
    recent_codes: tuple[int, ...] = ()
    bigram_codes: tuple[tuple[int, int], ...] = ()
    _bigram_index: dict[tuple[int, int], int] = field(default_factory=dict, repr=False)

    def fit(self, sequences: Sequence[Sequence[int]], activity_codes: Sequence[int]) -> SequenceFeatures:
        """``sequences``: the activity codes of each training case; ``activity_codes`` most frequent first."""
        self.recent_codes = tuple(activity_codes[: self.recency])
        pairs: Counter[tuple[int, int]] = Counter()
        for codes in sequences:
            pairs.update(itertools.pairwise(codes))
        self.bigram_codes = tuple(pair for pair, _ in pairs.most_common(self.bigrams))
        self._bigram_index = {pair: index for index, pair in enumerate(self.bigram_codes)}
        return self

    def bigram(self, first: int, second: int) -> int | None:
        """The column (within the bigram counts) of the pair ``first → second``, or None when it is not kept."""
        return self._bigram_index.get((first, second))

    def names(self, activity_name: dict[int, str]) -> list[str]:
        out: list[str] = []
        if self.runs:
            out += ["run seconds", "run mean gap seconds", "runs"]
            for back in range(1, self.runs + 1):
                out += [f"run[-{back + 1}] activity", f"run[-{back + 1}] length", f"run[-{back + 1}] seconds"]
        for code in self.recent_codes:
            name = activity_name.get(code, str(code))
            out += [f"events since {name}", f"seconds since {name}"]
        out += [f"gap[-{back}] seconds" for back in range(3, self.gaps + 1)]
        for first, second in self.bigram_codes:
            out.append(f"count {activity_name.get(first, first)} → {activity_name.get(second, second)}")
        if self.day:
            out += ["events on the last event's day", "seconds since the previous day's last event"]
        return out

    @property
    def width(self) -> int:
        return (
            (3 + 3 * self.runs if self.runs else 0)
            + 2 * len(self.recent_codes)
            + max(0, self.gaps - 2)
            + len(self.bigram_codes)
            + (2 if self.day else 0)
        )

    @property
    def categorical(self) -> list[int]:
        """Offsets (within these columns) of categorical ones: the activities of previous runs."""
        return [3 + 3 * back for back in range(self.runs)] if self.runs else []

    def state(self) -> SequenceState:
        return SequenceState(self)


class SequenceState:
    """The running state of one case while its events are read in order; ``fill`` writes the current row."""

    __slots__ = ("_bigrams", "_last_at", "_last_seen", "_runs", "_spec", "_times")

    def __init__(self, spec: SequenceFeatures) -> None:
        self._spec = spec
        self._times: list[float] = []
        self._runs: list[list[float]] = []  # [code, length, first time, last time]
        self._last_seen: dict[int, int] = {}
        self._last_at: dict[int, float] = {}
        self._bigrams = np.zeros(len(spec.bigram_codes), dtype=np.float64)

    def push(self, code: int, timestamp: float) -> None:
        if self._runs and int(self._runs[-1][0]) == code:
            run = self._runs[-1]
            if self._spec.bigram_codes:
                index = self._spec.bigram(code, code)
                if index is not None:
                    self._bigrams[index] += 1
            run[1] += 1
            run[3] = timestamp
        else:
            if self._runs and self._spec.bigram_codes:
                index = self._spec.bigram(int(self._runs[-1][0]), code)
                if index is not None:
                    self._bigrams[index] += 1
            self._runs.append([float(code), 1.0, timestamp, timestamp])
        self._times.append(timestamp)
        self._last_seen[code] = len(self._times)
        self._last_at[code] = timestamp

    def fill(self, out: F, at: int) -> None:
        spec = self._spec
        times = self._times
        now = times[-1]
        position = len(times)
        column = at
        if spec.runs:
            current = self._runs[-1]
            out[column] = now - current[2]
            out[column + 1] = (now - current[2]) / (current[1] - 1) if current[1] > 1 else math.nan
            out[column + 2] = len(self._runs)
            column += 3
            for back in range(1, spec.runs + 1):
                if back < len(self._runs):
                    run = self._runs[-1 - back]
                    out[column] = run[0]
                    out[column + 1] = run[1]
                    out[column + 2] = run[3] - run[2]
                else:
                    out[column] = 0.0
                column += 3
        for code in spec.recent_codes:
            seen = self._last_seen.get(code)
            if seen is not None:
                out[column] = position - seen
                out[column + 1] = now - self._last_at[code]
            column += 2
        for back in range(3, spec.gaps + 1):
            if position > back:
                out[column] = times[-back] - times[-back - 1]
            column += 1
        if spec.bigram_codes:
            out[column : column + len(spec.bigram_codes)] = self._bigrams
            column += len(spec.bigram_codes)
        if spec.day:
            today = math.floor(now / _DAY)
            same = 0
            previous = math.nan
            for stamp in reversed(times):
                if math.floor(stamp / _DAY) == today:
                    same += 1
                else:
                    previous = now - stamp
                    break
            out[column] = same
            out[column + 1] = previous
            column += 2
