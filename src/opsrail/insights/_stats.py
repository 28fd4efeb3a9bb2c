"""Small statistics the insights share: medians, rounding, and p-values corrected for many tests."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import median


def median_or_none(values: Sequence[float]) -> float | None:
    return float(median(values)) if values else None


def rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def bonferroni(p_values: Sequence[float]) -> list[float]:
    """Each p-value times the number of tests (at most 1): many segments and decision points are compared at once,
    and a finding should not be one of the chance results that so many comparisons make."""
    tests = len(p_values)
    return [min(1.0, p * tests) for p in p_values]


def readable_hours(hours: float | None) -> str:
    """A duration in hours as a person reads it: seconds, minutes, hours or days, three significant digits."""
    if hours is None:
        return "—"
    seconds = hours * 3600.0
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    return f"{hours:.3g} h" if hours < 48 else f"{hours / 24:.3g} d"
