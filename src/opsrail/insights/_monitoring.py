"""Model monitoring: how each model version decides in production, and whether its confidence means what it says.

Per decision and version, from its decision records: how many, how they were routed (``acted`` on their own,
sent to ``review``, given as ``advice``...), the spread of confidence, how people settled the ones they saw
(accepted, overridden, rejected) with a 95% Wilson interval on the agreement, the same per week and per segment,
and **calibration in production**: settled records grouped by confidence, each group's mean confidence against the
share people accepted. A group of ``min_bin`` or more settled records whose agreement is ``min_gap`` or more under
its mean confidence, with a one-sided binomial test under ``alpha`` after a Bonferroni correction over every group
tested in the report, is a finding (``overconfident``): the model claims more than reviewers grant it, so its
threshold lets through answers that would not survive a review.

Only settled records say whether an answer was right, and people settle mostly what was sent to them (low
confidence) and what they overrode afterwards: the calibration is that of the answers people saw, which is the
population a threshold is about. Records a model acted on and nobody touched are counted as ``unchecked``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from statistics import median
from typing import Any

from opsrail.insights._stats import bonferroni, rounded

SETTLED = ("accepted", "overridden", "rejected")


@dataclass(frozen=True, slots=True)
class MonitoringSettings:
    edges: tuple[float, ...] = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
    """Confidence groups for calibration: [0, 0.5), [0.5, 0.6), ..., [0.95, 1.0]."""
    min_bin: int = 20
    min_gap: float = 0.10
    alpha: float = 0.01


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float] | None:
    """The 95% Wilson score interval of a proportion (None without observations)."""
    if n == 0:
        return None
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _group(confidence: float, edges: Sequence[float]) -> int:
    for index in range(len(edges) - 1):
        if confidence < edges[index + 1]:
            return index
    return len(edges) - 2  # 1.0 belongs to the last group


def _summary(items: list[dict[str, Any]]) -> dict[str, Any]:
    statuses = Counter(item["status"] for item in items)
    settled = sum(statuses[s] for s in SETTLED)
    confidences = [float(item["confidence"]) for item in items if item.get("confidence") is not None]
    routes = Counter(item["route"] for item in items)
    interval = wilson(statuses["accepted"], settled)
    return {
        "records": len(items),
        "routes": dict(routes.most_common()),
        "acted_share": rounded(routes["acted"] / len(items)) if items else None,
        "median_confidence": rounded(median(confidences)) if confidences else None,
        "settled": {s: statuses[s] for s in SETTLED if statuses[s]},
        "unchecked": sum(1 for item in items if item["route"] == "acted" and item["status"] == "decided"),
        "agreement": rounded(statuses["accepted"] / settled) if settled else None,
        "agreement_interval": [rounded(interval[0]), rounded(interval[1])] if interval else None,
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _calibration(items: list[dict[str, Any]], settings: MonitoringSettings) -> list[dict[str, Any]]:
    groups: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for item in items:
        if item["status"] in SETTLED and item.get("confidence") is not None:
            confidence = float(item["confidence"])
            groups[_group(confidence, settings.edges)].append((confidence, item["status"] == "accepted"))
    found = []
    for index in sorted(groups):
        pairs = groups[index]
        mean = sum(c for c, _ in pairs) / len(pairs)
        agreed = sum(1 for _, ok in pairs if ok)
        found.append(
            {
                "from": settings.edges[index],
                "to": settings.edges[index + 1],
                "n": len(pairs),
                "mean_confidence": rounded(mean),
                "agreement": rounded(agreed / len(pairs)),
                "agreed": agreed,
                "gap": rounded(agreed / len(pairs) - mean),
            }
        )
    return found


def _week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def monitor(records: Iterable[dict[str, Any]], settings: MonitoringSettings = MonitoringSettings()) -> dict[str, Any]:
    """The report over decision records (``decision``, ``version``, ``created_at``, ``confidence``, ``route``,
    ``status``, ``segment``), oldest first or not: ``models`` (one entry per decision and version, newest version
    first within a decision) and ``findings``."""
    by_model: dict[tuple[str, int | None], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_model[record["decision"], record.get("version")].append(record)
    models = []
    for (name, version), items in sorted(by_model.items(), key=lambda kv: (kv[0][0], -(kv[0][1] or 0))):
        items.sort(key=lambda item: item["created_at"])
        confidences = [float(i["confidence"]) for i in items if i.get("confidence") is not None]
        weeks: dict[str, list[dict[str, Any]]] = defaultdict(list)
        segments: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for item in items:
            weeks[_week(item["created_at"])].append(item)
            segments[str(item.get("segment") or "unknown")].append(item)
        calibration = _calibration(items, settings)
        settled = sum(group["n"] for group in calibration)
        models.append(
            {
                "decision": name,
                "version": version,
                "first": items[0]["created_at"].isoformat(),
                "last": items[-1]["created_at"].isoformat(),
                **_summary(items),
                "confidence": {
                    "p10": rounded(_quantile(confidences, 0.1)),
                    "median": rounded(median(confidences)),
                    "p90": rounded(_quantile(confidences, 0.9)),
                }
                if confidences
                else None,
                "calibration": calibration,
                "calibration_error": rounded(sum(abs(g["gap"]) * g["n"] for g in calibration) / settled)
                if settled
                else None,
                "weeks": [{"week": week, **_summary(weeks[week])} for week in sorted(weeks)],
                "segments": {segment: _summary(segments[segment]) for segment in sorted(segments)},
            }
        )
    return {"models": models, "findings": _overconfident(models, settings)}


def _overconfident(models: list[dict[str, Any]], settings: MonitoringSettings) -> list[dict[str, Any]]:
    tested: list[tuple[dict[str, Any], dict[str, Any], float]] = []
    for model in models:
        for group in model["calibration"]:
            if group["n"] < settings.min_bin:
                continue
            from scipy.stats import binomtest  # loaded when there is something to test

            mean = min(max(float(group["mean_confidence"]), 0.0), 1.0)
            p = float(binomtest(group["agreed"], group["n"], mean, alternative="less").pvalue)
            tested.append((model, group, p))
    corrected = bonferroni([p for _, _, p in tested])
    findings = []
    for (model, group, _), p in zip(tested, corrected, strict=True):
        group["p_corrected"] = rounded(p, 6)
        if p < settings.alpha and -float(group["gap"]) >= settings.min_gap:
            findings.append(
                {
                    "kind": "overconfident",
                    "decision": model["decision"],
                    "version": model["version"],
                    "confidence": [group["from"], group["to"]],
                    "n": group["n"],
                    "mean_confidence": group["mean_confidence"],
                    "agreement": group["agreement"],
                    "p_corrected": rounded(p, 6),
                    "detail": f"at confidence {group['from']:g}-{group['to']:g} (mean {group['mean_confidence']:.0%}) "
                    f"people accepted {group['agreement']:.0%} of {group['n']} answers",
                    "hint": "raise its threshold, or retrain it on recent, settled cases "
                    "(`opsrail models train`), then compare again",
                }
            )
    return findings
