"""How far the activity sequence alone can take next-activity prediction on a log (context for Q3 and Q4).

For each key (the last k activities, optionally with the length of the trailing run of the last activity, capped at
10), predict the most frequent next activity seen after that key. Scored on the held-out prefixes of the Tax et al.
split (lengths 2 … n-1, as Q3 and Q4), with the table fitted on the training cases and, as an optimistic bound, on
the held-out prefixes themselves: no model that sees only those activities can beat the second figure on that key.
Usage: python -m bench.q_sequence_bound [--log PATH] (default: BPI'12 W)
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from opsrail.ml._eventlog import Case, read_event_log
from opsrail.ml._splits import split_log

LOG = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bpi2012" / "bpi_12_w_tax2017.csv.gz"

Key = Callable[[Sequence[str]], tuple[object, ...]]


def prefixes(cases: Sequence[Case]) -> Iterator[tuple[list[str], str]]:
    for case in cases:
        activities = [event.activity for event in case.events]
        for k in range(2, len(activities)):
            yield activities[:k], activities[k]


def run_length(prefix: Sequence[str]) -> int:
    n = 1
    while n < len(prefix) and prefix[-n - 1] == prefix[-1]:
        n += 1
    return min(n, 10)


KEYS: dict[str, Key] = {
    "last 1": lambda p: tuple(p[-1:]),
    "last 3": lambda p: tuple(p[-3:]),
    "last 1 + run length": lambda p: (p[-1], run_length(p)),
    "last 3 + run length": lambda p: (tuple(p[-3:]), run_length(p)),
    "last 5 + run length": lambda p: (tuple(p[-5:]), run_length(p)),
}


def accuracy(key: Key, fitted: Sequence[tuple[list[str], str]], scored: Sequence[tuple[list[str], str]]) -> float:
    table: dict[tuple[object, ...], Counter[str]] = defaultdict(Counter)
    for prefix, following in fitted:
        table[key(prefix)][following] += 1
    right = 0
    for prefix, following in scored:
        seen = table.get(key(prefix))
        right += seen is not None and seen.most_common(1)[0][0] == following
    return right / len(scored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log", type=Path, default=LOG)
    args = parser.parse_args()
    [split] = split_log(read_event_log(args.log), "tax2017")
    train, test = list(prefixes(split.train)), list(prefixes(split.test))
    for name, key in KEYS.items():
        print(
            json.dumps(
                {
                    "bench": "sequence_bound",
                    "metric": "next_activity_accuracy",
                    "log": args.log.name,
                    "key": name,
                    "fitted_on_training": round(accuracy(key, train, test), 4),
                    "fitted_on_held_out": round(accuracy(key, test, test), 4),
                    "n": len(test),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
