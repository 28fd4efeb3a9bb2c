"""The tamper-evident audit chain (pure): canonical JSON of an entry, its hash, and checking a whole chain.

Each entry's hash is the SHA-256 of the canonical JSON of the entry (sequence number, time, actor, action,
subject, details) together with the previous entry's hash, so altering an entry changes its hash, and removing or
reordering entries breaks the link the next one holds. Canonical JSON: keys sorted, no insignificant whitespace,
UTF-8, times as ISO 8601 in UTC.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS = "0" * 64
"""The previous hash of the first entry."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str | None
    action: str
    subject: str | None
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": _time(self.at),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def canonical(
    seq: int, at: datetime, actor: str | None, action: str, subject: str | None, details: Mapping[str, Any]
) -> bytes:
    """The bytes an entry's hash covers (without the hashes themselves)."""
    body = {"seq": seq, "at": _time(at), "actor": actor, "action": action, "subject": subject, "details": details}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str)


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str | None,
    action: str,
    subject: str | None,
    details: Mapping[str, Any],
) -> str:
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(canonical(seq, at, actor, action, subject, details))
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome of checking a chain: ``ok``, how many entries were checked, and the first bad one."""

    ok: bool
    checked: int
    last_seq: int | None
    first_bad_seq: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "last_seq": self.last_seq,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


def verify_chain(entries: Iterable[AuditEntry]) -> ChainReport:
    """Check entries in sequence order; stops at the first that was altered, removed or reordered."""
    previous_hash = GENESIS
    previous_seq: int | None = None
    checked = 0
    for entry in entries:
        if previous_seq is not None and entry.seq != previous_seq + 1:
            missing = f"{previous_seq + 1}" if entry.seq > previous_seq + 1 else "none"
            return ChainReport(
                False,
                checked,
                previous_seq,
                entry.seq,
                f"entry {entry.seq} follows {previous_seq}: entries are missing or out of order (expected {missing})",
            )
        if entry.prev_hash != previous_hash:
            return ChainReport(
                False,
                checked,
                previous_seq,
                entry.seq,
                f"entry {entry.seq} does not link to the entry before it: an entry before it was removed, "
                "reordered or altered",
            )
        expected = entry_hash(
            entry.prev_hash, entry.seq, entry.at, entry.actor, entry.action, entry.subject, entry.details
        )
        if expected != entry.hash:
            return ChainReport(False, checked, previous_seq, entry.seq, f"entry {entry.seq} was altered")
        previous_hash, previous_seq = entry.hash, entry.seq
        checked += 1
    return ChainReport(True, checked, previous_seq)


def _time(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
