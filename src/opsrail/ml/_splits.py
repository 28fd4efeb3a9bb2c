"""Splitting an event log into training and held-out cases: the Tax et al. 2017 protocol, time order, k folds.

Splits are by case, never by event, so no case contributes prefixes to both sides. ``tax2017`` keeps the file order
of cases (first appearance) and holds out the last third (``round(n / 3)`` cases, as in the published code);
``temporal`` does the same after ordering cases by their first event (a stable sort, so ties keep file order);
``kfold`` cuts the cases, shuffled with a fixed seed, into five folds and holds out each in turn.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from opsrail.ml._eventlog import Case, EventLog

__all__ = ["SPLIT_METHODS", "Split", "inner_split", "split_log"]

SPLIT_METHODS = ("tax2017", "temporal", "kfold")
FOLDS = 5


@dataclass(frozen=True, slots=True)
class Split:
    """Training and held-out cases of one split; ``name`` is ``tax2017``, ``temporal`` or ``fold 2/5``."""

    name: str
    train: list[Case]
    test: list[Case]


def _thirds(cases: Sequence[Case]) -> int:
    """Number of training cases: all but the last ``round(n / 3)``."""
    return len(cases) - round(len(cases) / 3)


def split_log(log: EventLog | Sequence[Case], method: str = "tax2017", *, seed: int = 0) -> list[Split]:
    """Split by case: one split for ``tax2017`` and ``temporal``, five for ``kfold``. Raises ``ValueError``."""
    cases = list(log.cases if isinstance(log, EventLog) else log)
    if len(cases) < 3:
        raise ValueError(f"a split needs at least 3 cases, the log has {len(cases)}")
    if method == "tax2017":
        cut = _thirds(cases)
        return [Split("tax2017", cases[:cut], cases[cut:])]
    if method == "temporal":
        ordered = sorted(cases, key=lambda one: one.start)
        cut = _thirds(ordered)
        return [Split("temporal", ordered[:cut], ordered[cut:])]
    if method == "kfold":
        if len(cases) < FOLDS:
            raise ValueError(f"kfold needs at least {FOLDS} cases, the log has {len(cases)}")
        order = list(range(len(cases)))
        random.Random(seed).shuffle(order)
        folds = [sorted(order[index::FOLDS]) for index in range(FOLDS)]
        out: list[Split] = []
        for number, held in enumerate(folds, start=1):
            held_set = set(held)
            train = [cases[index] for index in range(len(cases)) if index not in held_set]
            out.append(Split(f"fold {number}/{FOLDS}", train, [cases[index] for index in held]))
        return out
    raise ValueError(f"unknown split {method!r}; choose one of {', '.join(SPLIT_METHODS)}")


def inner_split(train: Sequence[Case], method: str, *, share: float = 0.2) -> tuple[list[Case], list[Case]]:
    """Inner validation cases, taken from training cases only: the last ``share`` in the split's own order.

    For ``tax2017`` that is file order, for ``temporal`` start time (the latest cases validate), for ``kfold`` the
    fold's training order.
    """
    cases = list(train)
    if method == "temporal":
        cases.sort(key=lambda one: one.start)
    held = max(1, round(len(cases) * share))
    if len(cases) - held < 1:
        raise ValueError(f"too few training cases ({len(cases)}) for an inner validation split")
    return cases[:-held], cases[-held:]
