"""Decision records checked against the audit log: a record changed in the database after the fact is found.

The audit log is a hash chain the database refuses to change (``opsrail audit verify``); decision records are an
ordinary table, which retention and settlement update. Each decision appends a ``decision.made`` entry with what it
decided (decision, source, version, run, step, idempotency key, outputs, confidence, route), and each settlement a
``decision.accepted|rejected|overridden`` entry (who, the final answer, the reason). This module reads the entries
once and compares every record with them, so a record whose answer, confidence or route was edited, one that was
settled without an entry, or one that vanished, is named with the recorded and the audited value.

Inputs, similar cases and summaries are not in the entries (retention drops them from records); the entry is what a
record's decision is checked against, not a copy of the record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

MADE = "decision.made"
SETTLED = {"decision.accepted": "accepted", "decision.rejected": "rejected", "decision.overridden": "overridden"}
MADE_FIELDS = {
    "decision": "decision",
    "source": "source",
    "version": "version",
    "run": "run_id",
    "step": "step_id",
    "idempotency_key": "idempotency_key",
    "outputs": "outputs",
    "confidence": "confidence",
    "route": "route",
}
"""``decision.made`` detail → record column."""
SETTLEMENT_COLUMNS = ("status", "reviewed_by", "final_outputs", "reason")
CHECKED_COLUMNS = (*MADE_FIELDS.values(), *SETTLEMENT_COLUMNS)
"""The record columns compared (a record's inputs, explanation, similar cases and summary are not read)."""
MAX_PROBLEMS = 1000

Normal = Callable[[Any], Any]
"""Makes a record's value comparable with an audited one (plain JSON, masked as audit details are)."""


def audited_decisions(
    entries: Iterable[Mapping[str, Any]],
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """From the audit entries: what each record's ``decision.made`` entry says, and its last settlement."""
    made: dict[str, dict[str, Any]] = {}
    settled: dict[str, dict[str, Any]] = {}
    for entry in entries:
        action, subject = entry["action"], entry.get("subject")
        if not subject:
            continue
        details = entry.get("details") or {}
        if action == MADE:
            made[subject] = {**{key: details.get(key) for key in MADE_FIELDS}, "seq": entry["seq"]}
        elif action in SETTLED:
            settled[subject] = {
                "status": SETTLED[action],
                "reviewed_by": entry.get("actor"),
                "final_outputs": details.get("value"),
                "reason": details.get("reason"),
                "seq": entry["seq"],
            }
    return made, settled


def check_records(
    records: Iterable[Mapping[str, Any]],
    made: Mapping[str, Mapping[str, Any]],
    settled: Mapping[str, Mapping[str, Any]],
    normal: Normal,
) -> dict[str, Any]:
    """Compare every record with its audit entries; ``problems`` lists the first ``MAX_PROBLEMS`` differences."""
    problems: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    seen: set[str] = set()
    checked = 0

    def problem(kind: str, record_id: str, **found: Any) -> None:
        counts[kind] = counts.get(kind, 0) + 1
        if len(problems) < MAX_PROBLEMS:
            problems.append({"kind": kind, "record": record_id, **found})

    for record in records:
        checked += 1
        record_id = str(record["id"])
        seen.add(record_id)
        entry = made.get(record_id)
        if entry is None:
            problem("not_audited", record_id, detail="no decision.made entry in the audit log")
            continue
        for key, column in MADE_FIELDS.items():
            if _differs(record.get(column), entry[key], normal):
                recorded, expected = normal(record.get(column)), entry[key]
                problem("altered", record_id, field=column, recorded=recorded, audited=expected, entry=entry["seq"])
        settlement = settled.get(record_id)
        status = record.get("status")
        if settlement is None:
            if status in SETTLED.values():
                problem("settled_without_audit", record_id, field="status", recorded=status, audited=None)
            continue
        for column in SETTLEMENT_COLUMNS:
            if _differs(record.get(column), settlement[column], normal):
                recorded, expected = normal(record.get(column)), settlement[column]
                problem(
                    "settlement_altered",
                    record_id,
                    field=column,
                    recorded=recorded,
                    audited=expected,
                    entry=settlement["seq"],
                )
    for record_id, entry in made.items():
        if record_id not in seen:
            problem("missing", record_id, detail="audited as made, but no such record", entry=entry["seq"])
    return {
        "ok": not counts,
        "checked": checked,
        "audited": len(made),
        "problems_by_kind": counts,
        "problems": problems,
        "truncated": sum(counts.values()) > len(problems),
    }


def _differs(recorded: Any, audited: Any, normal: Normal) -> bool:
    """Whether a record's value is not what was audited: equal as they are (the usual case, and cheap), or once
    made plain and masked as audit details are."""
    return bool(recorded != audited and normal(recorded) != audited)


def with_chain(report: Mapping[str, Any], chain: Mapping[str, Any]) -> dict[str, Any]:
    """The records' report with the audit chain's own check (``ChainReport.as_dict()``): ok only if both are."""
    return {**report, "ok": bool(chain.get("ok")) and bool(report["ok"]), "chain": dict(chain)}
