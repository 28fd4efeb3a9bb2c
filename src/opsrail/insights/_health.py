"""Automation health: the technical debt of rules, models and playbooks, as findings someone can act on.

Each finding names its subject (a table's rule, a decision, a playbook step or version), what was seen, how many
items it rests on, a severity (``warning``: something is likely wrong; ``info``: worth a look) and what to do:

``rule_never_matched``
    a rule of a decision table's version matched none of that version's records (at least ``min_records``);
``decision_overridden``
    people overrode (or rejected) at least ``max_override_rate`` of a decision's settled records;
``overrides_rising``
    people settle the newer half of a decision's settled records (at least ``min_records`` each) against it more
    often than the older half: at least ``min_rise`` more, and a one-sided Fisher test under ``alpha``: the table or
    model no longer fits what people decide (model drift seen in outcomes);
``confidence_shift``
    a model's confidence moved between the older and the newer half of its records (at least ``min_half`` records
    each): population stability index (10 bins over 0-1) at least ``min_psi`` and a two-sample Kolmogorov-Smirnov
    test under ``alpha``; its inputs drifted or it went stale;
``step_failing``
    at least ``max_failure_rate`` of a step's ends were failures (at least ``min_steps`` ends); not for approval
    steps, whose failures are mostly people saying no (``opsrail insights drift`` compares those);
``step_retried``
    the step needed at least ``max_retry_rate`` retries per end;
``sla_breached``
    at least ``max_breach_rate`` of a step's SLA clocks breached (at least ``min_steps`` clocks ended);
``fallback_used``
    a handler (fallback, compensation, approval timeout) ran in at least ``max_fallback_rate`` of the runs;
``runs_on_old_versions``
    runs still in flight on a version that is not the playbook's active one (``opsrail runs migrate`` moves them);
``unresolved_reference``
    the active version names a decision, playbook, operation or channel this server cannot find;
``decision_unused``
    a published decision table or model that no record in the window used;
``model_overconfident``
    a group of a model's settled answers people accepted well below the confidence it gave them (the models
    report's finding: ``opsrail insights models``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from opsrail.insights._stats import rounded


@dataclass(frozen=True, slots=True)
class HealthSettings:
    min_records: int = 20
    min_steps: int = 10
    max_override_rate: float = 0.2
    min_psi: float = 0.2
    min_half: int = 50
    alpha: float = 0.01
    min_rise: float = 0.15
    max_failure_rate: float = 0.2
    max_retry_rate: float = 0.5
    max_fallback_rate: float = 0.2
    max_breach_rate: float = 0.2


@dataclass(slots=True)
class HealthInputs:
    steps: list[dict[str, Any]] = field(default_factory=list)
    """Per playbook, version and step: ``succeeded``, ``failed``, ``skipped``, ``retries``, ``activated``
    (as a handler), ``sla_met`` and ``sla_breached`` (SLA clocks), ``runs`` (of that version in the window),
    ``handler`` (whether the step is one), ``kind``."""
    tables: list[dict[str, Any]] = field(default_factory=list)
    """Per decision table version with records in the window: ``name``, ``version``, ``rules`` (ids in order),
    ``records``, ``hits`` (rule id to the records it matched)."""
    decisions: list[dict[str, Any]] = field(default_factory=list)
    """Per decision: ``name``, ``source`` (table or model), ``records``, ``settled`` (status to count),
    ``against`` (for each settled record in time order, whether it was overridden or rejected), ``confidences`` (in
    time order, models only)."""
    catalog: list[str] = field(default_factory=list)
    """Every published decision table and registered model."""
    versions: list[dict[str, Any]] = field(default_factory=list)
    """Per playbook: ``playbook``, ``active_version``, ``in_flight`` (version to open runs)."""
    overconfident: list[dict[str, Any]] = field(default_factory=list)
    """The ``overconfident`` findings of the models report (``opsrail.insights._monitoring``)."""
    unresolved: list[dict[str, Any]] = field(default_factory=list)
    """Per active playbook version: ``playbook``, ``version``, ``warnings`` (each ``field`` and ``message``)."""


def psi(older: Sequence[float], newer: Sequence[float], bins: int = 10) -> float:
    """Population stability index of two samples of values in 0-1: 10 equal bins, each bin's count plus one half
    (so an empty bin of a small sample does not weigh as if it could never happen)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    a = np.histogram(np.clip(older, 0.0, 1.0), edges)[0] + 0.5
    b = np.histogram(np.clip(newer, 0.0, 1.0), edges)[0] + 0.5
    a, b = a / a.sum(), b / b.sum()
    return float(np.sum((b - a) * np.log(b / a)))


def _finding(
    kind: str, subject: str, detail: str, n: int, severity: str, hint: str, value: float | None = None
) -> dict[str, Any]:
    return {
        "kind": kind,
        "subject": subject,
        "detail": detail,
        "n": n,
        "value": rounded(value),
        "severity": severity,
        "hint": hint,
    }


def health(inputs: HealthInputs, settings: HealthSettings = HealthSettings()) -> dict[str, Any]:
    """Every finding, warnings first, then by kind and subject; and the counts they were drawn from."""
    findings: list[dict[str, Any]] = []
    findings += _tables(inputs, settings)
    findings += _decisions(inputs, settings)
    findings += _steps(inputs, settings)
    findings += _versions(inputs)
    for found in inputs.overconfident:
        findings.append(
            _finding(
                "model_overconfident",
                f"{found['decision']} v{found['version']}",
                found["detail"],
                int(found["n"]),
                "warning",
                found["hint"],
                found["agreement"],
            )
        )
    used = {decision["name"] for decision in inputs.decisions if decision["records"]}
    for name in sorted(set(inputs.catalog) - used):
        findings.append(
            _finding(
                "decision_unused",
                name,
                "no decision record in the window",
                0,
                "info",
                "if no playbook needs it any more, stop publishing it; else check the steps that should call it",
            )
        )
    findings.sort(key=lambda f: (f["severity"] != "warning", f["kind"], f["subject"]))
    return {
        "findings": findings,
        "counts": {
            "steps": len(inputs.steps),
            "decisions": len(inputs.decisions),
            "tables": len(inputs.tables),
            "playbooks": len(inputs.versions),
        },
    }


def _tables(inputs: HealthInputs, settings: HealthSettings) -> list[dict[str, Any]]:
    found = []
    for table in inputs.tables:
        if table["records"] < settings.min_records:
            continue
        for rule in table["rules"]:
            if not table["hits"].get(rule):
                found.append(
                    _finding(
                        "rule_never_matched",
                        f"{table['name']}@{table['version']} rule {rule}",
                        f"matched none of the version's {table['records']} records",
                        table["records"],
                        "info",
                        "a rule no input reaches is dead weight or a condition written wrong; "
                        "`opsrail decisions test` shows which inputs it expects",
                    )
                )
    return found


def _decisions(inputs: HealthInputs, settings: HealthSettings) -> list[dict[str, Any]]:
    found = []
    for decision in inputs.decisions:
        settled = decision.get("settled", {})
        total = sum(settled.values())
        against = settled.get("overridden", 0) + settled.get("rejected", 0)
        if total >= settings.min_records and against / total >= settings.max_override_rate:
            found.append(
                _finding(
                    "decision_overridden",
                    decision["name"],
                    f"people overrode or rejected {against} of {total} settled records",
                    total,
                    "warning",
                    "the "
                    + ("rules" if decision["source"] == "table" else "model")
                    + " and the people disagree: `opsrail decisions records list --overridden` shows where; "
                    + ("revise the table" if decision["source"] == "table" else "retrain on the corrected labels"),
                    against / total,
                )
            )
        found += _overrides_rising(decision, settings)
        confidences = [c for c in decision.get("confidences", []) if c is not None and math.isfinite(c)]
        half = len(confidences) // 2
        if half >= settings.min_half:
            from scipy.stats import ks_2samp  # scipy.stats takes 0.6 s to import: only when it is needed

            older, newer = confidences[:half], confidences[half:]
            shift = psi(older, newer)
            if shift >= settings.min_psi and float(ks_2samp(older, newer).pvalue) < settings.alpha:
                found.append(
                    _finding(
                        "confidence_shift",
                        decision["name"],
                        f"confidence moved from a mean of {np.mean(older):.2f} to {np.mean(newer):.2f} "
                        f"between the older and the newer half of {len(confidences)} records (PSI {shift:.2f})",
                        len(confidences),
                        "warning",
                        "what the model sees has changed or it has gone stale: compare recent inputs with its "
                        "training data, and retrain with `opsrail models train`",
                        shift,
                    )
                )
    return found


def _overrides_rising(decision: dict[str, Any], settings: HealthSettings) -> list[dict[str, Any]]:
    """People settle the newer half of a decision's records against it more often than the older half."""
    sequence = [bool(x) for x in decision.get("against", [])]
    half = len(sequence) // 2
    if half < settings.min_records:
        return []
    older, newer = sequence[:half], sequence[half:]
    older_rate, newer_rate = sum(older) / len(older), sum(newer) / len(newer)
    if newer_rate - older_rate < settings.min_rise:
        return []
    from scipy.stats import fisher_exact

    table = [[sum(newer), len(newer) - sum(newer)], [sum(older), len(older) - sum(older)]]
    if float(fisher_exact(table, alternative="greater")[1]) >= settings.alpha:
        return []
    return [
        _finding(
            "overrides_rising",
            decision["name"],
            f"people overrode or rejected {newer_rate:.0%} of the newer {len(newer)} settled records, against "
            f"{older_rate:.0%} of the older {len(older)}",
            len(sequence),
            "warning",
            "the "
            + ("rules no longer fit" if decision["source"] == "table" else "model no longer fits")
            + " what people decide: look at the recent overrides (`opsrail decisions records list --overridden`)",
            newer_rate - older_rate,
        )
    ]


def _steps(inputs: HealthInputs, settings: HealthSettings) -> list[dict[str, Any]]:
    found = []
    for step in inputs.steps:
        subject = f"{step['playbook']}@{step['version']} step {step['step']}"
        ends = step["succeeded"] + step["failed"]
        clocks = step.get("sla_met", 0) + step.get("sla_breached", 0)
        if clocks >= settings.min_steps and step.get("sla_breached", 0) / clocks >= settings.max_breach_rate:
            found.append(
                _finding(
                    "sla_breached",
                    subject,
                    f"{step['sla_breached']} of {clocks} SLA clocks breached",
                    clocks,
                    "warning",
                    "the target is tighter than the work: staff or automate the step, or change its target or "
                    "calendar in a new version",
                    step["sla_breached"] / clocks,
                )
            )
        if step.get("handler"):
            runs = step.get("runs", 0)
            if runs >= settings.min_steps and step["activated"] / runs >= settings.max_fallback_rate:
                found.append(
                    _finding(
                        "fallback_used",
                        subject,
                        f"ran as a handler in {step['activated']} of {runs} runs",
                        runs,
                        "warning",
                        "the step it stands in for fails or times out often: look at that step, not the handler",
                        step["activated"] / runs,
                    )
                )
            continue
        if ends < settings.min_steps:
            continue
        if step.get("kind") != "approval" and step["failed"] / ends >= settings.max_failure_rate:
            found.append(
                _finding(
                    "step_failing",
                    subject,
                    f"{step['failed']} of {ends} ends were failures",
                    ends,
                    "warning",
                    "`opsrail runs list --status failed` and the step's errors say why; give it a retry or a "
                    "fallback, or fix the connector",
                    step["failed"] / ends,
                )
            )
        if step["retries"] / ends >= settings.max_retry_rate:
            found.append(
                _finding(
                    "step_retried",
                    subject,
                    f"{step['retries']} retries for {ends} ends",
                    ends,
                    "info",
                    "the system it calls is flaky or rate-limited: check the connector's dead letters and limits",
                    step["retries"] / ends,
                )
            )
    return found


def _versions(inputs: HealthInputs) -> list[dict[str, Any]]:
    found = []
    for playbook in inputs.versions:
        for version, count in sorted(playbook["in_flight"].items()):
            if version != playbook["active_version"] and count:
                found.append(
                    _finding(
                        "runs_on_old_versions",
                        f"{playbook['playbook']}@{version}",
                        f"{count} run(s) in flight; the active version is {playbook['active_version']}",
                        count,
                        "info",
                        f"`opsrail runs migrate {playbook['playbook']} --from {version} --to "
                        f"{playbook['active_version']}` moves them, or let them finish",
                    )
                )
    for item in inputs.unresolved:
        for warning in item["warnings"]:
            found.append(
                _finding(
                    "unresolved_reference",
                    f"{item['playbook']}@{item['version']} {warning['field']}",
                    warning["message"],
                    1,
                    "warning",
                    "a run fails at this step: publish what it names, or fix the playbook",
                )
            )
    return found
