"""Decision records checked against the audit log: a record changed in the database after the fact is found.

The audit log is a hash chain the database refuses to change (``opsrail audit verify``); decision records are an
ordinary table, which retention and settlement update. Each decision appends a ``decision.made`` entry with what it
decided (decision, source, version, run, step, idempotency key, outputs, confidence, route), and each settlement a
``decision.accepted|rejected|overridden`` entry (who, the final answer, the reason). This module reads the entries
once and compares every record with them, so a record whose answer, confidence or route was edited, one that was
settled without an entry, or one that vanished, is named with the recorded and the audited value.

A record's inputs are not in its entry, but their SHA-256 is (``inputs_sha256``, canonical JSON): inputs changed
afterwards are found too, while inputs emptied by retention (a record made before the cut-off of a
``retention.applied`` entry for decision records) are not a problem. Explanations, similar cases and summaries are
not checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

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
CHECKED_COLUMNS = (*MADE_FIELDS.values(), *SETTLEMENT_COLUMNS, "inputs", "created_at")
"""The record columns read (inputs by their digest; a record's explanation, similar cases and summary are not read)."""
MAX_PROBLEMS = 1000

Normal = Callable[[Any], Any]
"""Makes a record's value comparable with an audited one (plain JSON, masked as audit details are)."""


def inputs_digest(inputs: Any) -> str:
    """The SHA-256 of a record's inputs as canonical JSON (keys sorted, a whole float written as an integer, as a
    JSON column may give it back), as its ``decision.made`` entry holds it."""
    return hashlib.sha256(orjson.dumps(_plain_numbers(inputs), option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def _plain_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, Mapping):
        return {str(key): _plain_numbers(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_numbers(item) for item in value]
    return value


@dataclass
class Audited:
    """What the audit log says about decision records."""

    made: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each record's ``decision.made`` entry: the compared details, ``inputs_sha256`` and the entry's ``seq``."""
    settled: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each record's last settlement."""
    anonymised_before: datetime | None = None
    """The latest cut-off of a retention that dropped decision records' inputs."""


def audited_decisions(entries: Iterable[Mapping[str, Any]]) -> Audited:
    """Read the audit entries once: what each ``decision.made`` entry says, the last settlements, retention."""
    audited = Audited()
    made, settled = audited.made, audited.settled
    for entry in entries:
        action, subject = entry["action"], entry.get("subject")
        details = entry.get("details") or {}
        if action == "retention.applied":
            kept = details.get("decision_records")
            if isinstance(kept, Mapping) and kept.get("before"):
                cut = datetime.fromisoformat(str(kept["before"]))
                if audited.anonymised_before is None or cut > audited.anonymised_before:
                    audited.anonymised_before = cut
            continue
        if not subject:
            continue
        if action == MADE:
            made[subject] = {
                **{key: details.get(key) for key in MADE_FIELDS},
                "inputs_sha256": details.get("inputs_sha256"),
                "seq": entry["seq"],
            }
        elif action in SETTLED:
            settled[subject] = {
                "status": SETTLED[action],
                "reviewed_by": entry.get("actor"),
                "final_outputs": details.get("value"),
                "reason": details.get("reason"),
                "seq": entry["seq"],
            }
    return audited


def check_records(records: Iterable[Mapping[str, Any]], audited: Audited, normal: Normal) -> dict[str, Any]:
    """Compare every record with its audit entries; ``problems`` lists the first ``MAX_PROBLEMS`` differences."""
    made, settled = audited.made, audited.settled
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
        digest = entry["inputs_sha256"]  # absent from entries written before it was recorded
        emptied = record.get("inputs") == {} and _anonymised(record.get("created_at"), audited.anonymised_before)
        if digest is not None and not emptied and inputs_digest(record.get("inputs")) != digest:
            problem(
                "altered",
                record_id,
                field="inputs",
                recorded=inputs_digest(record.get("inputs")),
                audited=digest,
                entry=entry["seq"],
            )
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


def _anonymised(created: Any, cut: datetime | None) -> bool:
    """Whether retention dropped this record's inputs: it was made before the latest cut-off of such a retention."""
    if cut is None or not isinstance(created, datetime):
        return False
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return bool(created < cut)
