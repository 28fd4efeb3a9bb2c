"""Outcome drift between segments: where one region, channel or tier is decided or served differently.

Observations come from four places (see ``opsrail.services._insights``): closed tasks (the point is the playbook's
step; the outcome approved, rejected or overridden; the duration, hours from opening to closing), other steps' ends
(the point is the playbook's step; succeeded or failed: a connector failing for one entity's accounts), decision
records (the point is the decision; the outcome how it was routed, and for those a person settled, how they settled
it) and finished runs (the point is the playbook; the outcome the run's status; the duration, the run's hours).

At each point, every segment with at least ``min_n`` observations is compared with the other segments that have
as many (``against``; a segment with fewer is left out of both sides, so that what cannot be measured is not
blamed on a segment that can), on two measures:

* ``share``: the outcome whose share differs most between the segment and the others, with Fisher's exact test on
  that 2-by-2 table (two-sided); the point also gets a chi-square test of its whole segment-by-outcome table. When
  a point's observations fall into two or more *strata* (an approval task's rule: the same thresholds, so the same
  kind of input; a decision record's matched rule or a model's answer), the segment is compared with the others
  within each stratum instead: the Cochran-Mantel-Haenszel test, and the Mantel-Haenszel difference of the shares as
  the effect (``test`` says which; ``value`` and ``rest_value`` stay the plain shares). A region whose credits are
  larger, and so go to a stricter rule more often, is then not a finding for that alone;
* ``median_hours``: the median duration of the segment and of the others, with the Mann-Whitney U test.

Many comparisons are made at once, so a comparison's p-value is corrected (Bonferroni: times the number of
comparisons in the report) and it is a *finding* only when the corrected p-value is under ``alpha`` and the effect
is large enough to act on: shares at least ``min_difference`` apart, or a median at least ``min_ratio`` times the
others' (or under its inverse) and at least ``min_gap_minutes`` away from it.

A segment that differs a lot drags the pool it is part of: with the EU rejecting twice as often, every other
region looks lenient "against the rest". So findings are taken one at a time, the strongest first, and a segment
found to differ leaves the pool the remaining segments are compared with (``against`` then says "the rest but
EU"). With only two such segments there is one comparison, named after the other segment. Findings come first, the
largest effect first.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from opsrail.insights._stats import median_or_none, rounded


@dataclass(frozen=True, slots=True)
class Observation:
    kind: str
    """``task``, ``step``, ``route``, ``settlement`` or ``run``."""
    point: str
    """Where it was decided: ``playbook/step`` for a task, the decision's name, the playbook's id."""
    segment: str
    outcome: str
    hours: float | None = None
    stratum: str | None = None
    """What makes observations comparable (an approval's rule, a record's rule or answer); outcomes are compared
    within strata when a point has two or more."""


@dataclass(frozen=True, slots=True)
class DriftSettings:
    min_n: int = 20
    alpha: float = 0.01
    min_difference: float = 0.10
    min_ratio: float = 1.5
    min_gap_minutes: float = 1.0
    """Medians must also be this far apart: a ratio of 1.5 between 4 seconds and 6 is nothing to act on."""


Compare = Callable[[str, list[str]], dict[str, Any] | None]
"""Compares one segment with a pool of others; None when there is nothing to compare."""


def _mantel_haenszel(tables: list[tuple[int, int, int, int]]) -> tuple[float, float] | None:
    """Cochran-Mantel-Haenszel test of 2-by-2 tables (a, b, c, d per stratum: the segment with and without the
    outcome, the others with and without it), with the continuity correction; and the Mantel-Haenszel weighted
    difference of the two shares. None when no stratum has both sides."""
    deviation = variance = difference = weight = 0.0
    for a, b, c, d in tables:
        n1, n2, total = a + b, c + d, a + b + c + d
        if n1 == 0 or n2 == 0:
            continue
        m1 = a + c
        deviation += a - n1 * m1 / total
        if total > 1:
            variance += n1 * n2 * m1 * (total - m1) / (total * total * (total - 1))
        difference += (a * n2 - c * n1) / total
        weight += n1 * n2 / total
    if weight == 0:
        return None
    from scipy.stats import chi2

    p = 1.0 if variance == 0 else float(chi2.sf(max(0.0, abs(deviation) - 0.5) ** 2 / variance, 1))
    return p, difference / weight


def _share_test(
    counts: dict[str, Counter[str]], outcomes: list[str], strata: dict[str, dict[str, Counter[str]]]
) -> Compare:
    """Fisher's exact test on the outcome whose share differs most; when the point's observations fall into two or
    more strata (an approval's rule: the same thresholds, so the same kind of input), the Cochran-Mantel-Haenszel
    test within strata instead, and the effect is the difference within strata."""
    stratified = len({k for found in strata.values() for k in found}) >= 2

    def within(segment: str, pool: list[str], outcome: str) -> tuple[float, float] | None:
        keys = sorted({k for found in strata.values() for k in found})
        tables = []
        for key in keys:
            mine = strata[segment].get(key, Counter())
            rest = Counter[str]()
            for other in pool:
                rest.update(strata[other].get(key, Counter()))
            a, c = mine[outcome], rest[outcome]
            tables.append((a, sum(mine.values()) - a, c, sum(rest.values()) - c))
        return _mantel_haenszel(tables)

    def compare(segment: str, pool: list[str]) -> dict[str, Any] | None:
        mine = counts[segment]
        rest = Counter[str]()
        for other in pool:
            rest.update(counts[other])
        n_mine, n_rest = sum(mine.values()), sum(rest.values())
        if n_mine == 0 or n_rest == 0 or len(outcomes) < 2:
            return None
        share_of = {o: (mine[o] / n_mine, rest[o] / n_rest) for o in outcomes}
        adjusted = {o: within(segment, pool, o) for o in outcomes} if stratified else {}
        if stratified and all(v is None for v in adjusted.values()):
            return None

        def gap(o: str) -> float:
            found = adjusted.get(o)
            return abs(found[1]) if found is not None else abs(share_of[o][0] - share_of[o][1])

        outcome = max(outcomes, key=lambda o: (gap(o), o))
        share, rest_share = share_of[outcome]
        result = {
            "measure": "share",
            "outcome": outcome,
            "n": n_mine,
            "rest_n": n_rest,
            "value": share,
            "rest_value": rest_share,
            "effect": share - rest_share,
            "test": "fisher",
            "strata": 1,
        }
        found = adjusted.get(outcome)
        if found is not None:
            result.update(p=found[0], effect=found[1], test="cmh", strata=len(_strata_keys(strata)))
            return result
        table = [[mine[outcome], n_mine - mine[outcome]], [rest[outcome], n_rest - rest[outcome]]]
        from scipy.stats import fisher_exact  # scipy.stats takes 0.6 s to import: only when a report is made

        result["p"] = float(fisher_exact(table)[1])
        return result

    return compare


def _strata_keys(strata: dict[str, dict[str, Counter[str]]]) -> set[str]:
    return {k for found in strata.values() for k in found}


def _hours_test(hours: dict[str, list[float]]) -> Compare:
    def compare(segment: str, pool: list[str]) -> dict[str, Any] | None:
        mine = hours.get(segment, [])
        others = [h for other in pool for h in hours.get(other, [])]
        mine_median, rest_median = median_or_none(mine), median_or_none(others)
        if mine_median is None or rest_median is None:
            return None
        from scipy.stats import mannwhitneyu

        return {
            "measure": "median_hours",
            "outcome": None,
            "n": len(mine),
            "rest_n": len(others),
            "value": mine_median,
            "rest_value": rest_median,
            "effect": mine_median / rest_median if rest_median > 0 else math.inf,
            "test": "mann-whitney",
            "strata": 1,
            "p": float(mannwhitneyu(mine, others, alternative="two-sided").pvalue),
        }

    return compare


def _large(comparison: dict[str, Any], settings: DriftSettings) -> bool:
    effect = comparison["effect"]
    if comparison["measure"] == "share":
        return bool(abs(effect) >= settings.min_difference)
    gap_minutes = abs(comparison["value"] - comparison["rest_value"]) * 60.0
    ratio = effect >= settings.min_ratio or effect <= 1.0 / settings.min_ratio
    return bool(ratio and gap_minutes >= settings.min_gap_minutes)


def _size(comparison: dict[str, Any]) -> float:
    effect = float(comparison["effect"])
    if comparison["measure"] == "share":
        return abs(effect)
    return abs(math.log(effect)) if 0 < effect < math.inf else math.inf


def _stepwise(
    segments: list[str], sizes: dict[str, int], compare: Compare, tests: int, settings: DriftSettings
) -> list[dict[str, Any]]:
    """One comparison per segment with ``min_n`` observations (one in all when two have), each against the others
    that have as many; findings are taken out of the pool one at a time, the strongest first."""
    testable = [s for s in segments if sizes[s] >= settings.min_n]
    if len(testable) < 2:
        return []
    pool = list(testable)
    remaining = testable[:1] if len(testable) == 2 else list(testable)
    found: list[dict[str, Any]] = []
    while remaining:
        results = []
        for segment in remaining:
            others = [s for s in pool if s != segment]
            if not others:
                continue
            result = compare(segment, others)
            if result is not None:
                excluded = sorted(set(testable) - set(pool) - {segment})
                if len(testable) == 2:
                    against = others[0]
                else:
                    against = "the rest" + (f" but {', '.join(excluded)}" if excluded else "")
                results.append({"segment": segment, "against": against, **result})
        if not results:
            break
        for result in results:
            result["p_corrected"] = min(1.0, result["p"] * tests)
            result["finding"] = bool(result["p_corrected"] < settings.alpha and _large(result, settings))
        strongest = min(
            (r for r in results if r["finding"]), key=lambda r: (r["p"], -_size(r), r["segment"]), default=None
        )
        if strongest is None:
            found += results
            break
        found.append(strongest)
        remaining.remove(strongest["segment"])
        pool.remove(strongest["segment"])
    return found


def _chi_square(counts: dict[str, Counter[str]], outcomes: list[str]) -> float | None:
    table = np.array([[counts[segment][o] for o in outcomes] for segment in counts], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return None
    from scipy.stats import chi2_contingency

    return float(chi2_contingency(table).pvalue)


def drift(observations: Iterable[Observation], settings: DriftSettings = DriftSettings()) -> dict[str, Any]:
    """Compare each segment with the others at every decision point; see the module's docstring."""
    points: dict[tuple[str, str], list[Observation]] = defaultdict(list)
    for item in observations:
        points[item.kind, item.point].append(item)
    prepared = []
    tests = 0
    for (kind, point), items in sorted(points.items()):
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        strata: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
        hours: dict[str, list[float]] = defaultdict(list)
        for item in items:
            counts[item.segment][item.outcome] += 1
            strata[item.segment][item.stratum or ""][item.outcome] += 1
            if item.hours is not None and math.isfinite(item.hours):
                hours[item.segment].append(item.hours)
        segments = sorted(counts)
        outcomes = sorted({item.outcome for item in items})
        measures: list[tuple[dict[str, int], Compare]] = []
        if len(outcomes) >= 2:
            measures.append(({s: sum(counts[s].values()) for s in segments}, _share_test(counts, outcomes, strata)))
        if hours:
            measures.append(({s: len(hours.get(s, [])) for s in segments}, _hours_test(hours)))
        for sizes, _ in measures:
            testable = sum(1 for s in segments if sizes[s] >= settings.min_n)
            tests += 0 if testable < 2 else 1 if testable == 2 else testable
        prepared.append((kind, point, items, counts, segments, outcomes, measures))
    comparisons: list[dict[str, Any]] = []
    summaries = []
    for kind, point, items, counts, segments, outcomes, measures in prepared:
        compared = [s for s in segments if sum(counts[s].values()) >= settings.min_n]
        summaries.append(
            {
                "kind": kind,
                "point": point,
                "n": len(items),
                "outcomes": dict(sorted(Counter(item.outcome for item in items).items())),
                "segments": {
                    segment: {"n": sum(counts[segment].values()), "outcomes": dict(sorted(counts[segment].items()))}
                    for segment in segments
                },
                "chi_square_p": _p(_chi_square({s: counts[s] for s in compared}, outcomes))
                if len(compared) >= 2
                else None,
            }
        )
        if len(segments) < 2:
            continue
        for sizes, compare in measures:
            for result in _stepwise(segments, sizes, compare, max(1, tests), settings):
                comparisons.append({"kind": kind, "point": point, **result})
    comparisons.sort(key=lambda c: (not c["finding"], -_size(c), c["p"], c["kind"], c["point"], c["segment"]))
    for comparison in comparisons:
        for key in ("value", "rest_value", "effect"):
            comparison[key] = rounded(comparison[key]) if math.isfinite(comparison[key]) else None
        comparison["p"] = _p(comparison["p"])
        comparison["p_corrected"] = _p(comparison["p_corrected"])
    return {
        "settings": {
            "min_n": settings.min_n,
            "alpha": settings.alpha,
            "min_difference": settings.min_difference,
            "min_ratio": settings.min_ratio,
            "min_gap_minutes": settings.min_gap_minutes,
            "correction": "bonferroni",
            "tests": len(comparisons),
        },
        "findings": [c for c in comparisons if c["finding"]],
        "comparisons": comparisons,
        "points": summaries,
    }


def _p(value: float | None) -> float | None:
    """p-values keep three significant digits, however small."""
    return None if value is None else float(f"{value:.3g}")
