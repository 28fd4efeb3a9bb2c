"""Use cases of the audit log: record what changed state or decided, check the chain, export it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from itertools import islice
from typing import Any, Protocol

import orjson

from opsrail.governance import AuditEntry, ChainReport, redact, verify_chain
from opsrail.model import Clock


class AuditStore(Protocol):
    def append(
        self, at: datetime, actor: str | None, action: str, subject: str | None, details: Mapping[str, Any]
    ) -> AuditEntry: ...

    def hold(
        self, at: datetime, actor: str | None, action: str, subject: str | None, details: Mapping[str, Any]
    ) -> bool:
        """Keep the entry for the transaction that saves the result of the step in progress (the step's effects
        and their audit entries then commit together); False when no step is in progress here."""
        ...

    def entries(
        self, *, since: datetime | None = None, after_seq: int = 0, page_size: int | None = None
    ) -> Iterator[AuditEntry]:
        """Every entry after ``after_seq`` in sequence order, read ``page_size`` rows at a time."""
        ...

    def latest(self, limit: int, *, since: datetime | None = None) -> list[AuditEntry]:
        """The last ``limit`` entries (at or after ``since``), oldest first."""
        ...


class Auditor(Protocol):
    """What the other services call: ``audit(actor, action, subject, details)``."""

    def __call__(self, actor: str | None, action: str, subject: str | None, details: Mapping[str, Any]) -> None: ...


def not_audited(actor: str | None, action: str, subject: str | None, details: Mapping[str, Any]) -> None:
    """The auditor of a service built without an audit log (unit tests of a single service)."""


class AuditService:
    def __init__(self, store: AuditStore, clock: Clock, redact_fields: Sequence[str] = ()) -> None:
        self.store = store
        self.clock = clock
        self.redact_fields = tuple(redact_fields)

    def __call__(self, actor: str | None, action: str, subject: str | None, details: Mapping[str, Any]) -> None:
        """What services call. Inside a step of a run the entry commits with the step's result, in the same
        transaction as the change it records; elsewhere it is appended at once."""
        plain = self._plain(details)
        at = self.clock.now()
        if not self.store.hold(at, actor, action, subject, plain):
            self.store.append(at, actor, action, subject, plain)

    def record(
        self, actor: str | None, action: str, subject: str | None, details: Mapping[str, Any] | None = None
    ) -> AuditEntry:
        """Append an entry now, in its own transaction, and return it as chained."""
        return self.store.append(self.clock.now(), actor, action, subject, self._plain(details))

    def _plain(self, details: Mapping[str, Any] | None) -> dict[str, Any]:
        # Details are stored as JSON and hashed as canonical JSON: make them plain JSON values first, so the
        # hash computed now is the hash of what is read back; personal and payment data are masked.
        plain: dict[str, Any] = redact(orjson.loads(orjson.dumps(dict(details or {}), default=str)), self.redact_fields)
        return plain

    def verify(self) -> ChainReport:
        return verify_chain(self.store.entries())

    def export(
        self, since: datetime | None = None, after: int = 0, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Entries in sequence order: at or after ``since``, after entry number ``after`` (a page cursor), at most
        ``limit`` of them (all when None)."""
        entries = self.store.entries(since=since, after_seq=after, page_size=limit)
        for entry in entries if limit is None else islice(entries, limit):
            yield entry.as_dict()

    def latest(self, limit: int, since: datetime | None = None) -> list[dict[str, Any]]:
        """The last ``limit`` entries, oldest first, read without going through the rest of the log."""
        return [entry.as_dict() for entry in self.store.latest(limit, since=since)]
