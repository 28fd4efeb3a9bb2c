"""The storage ports the services need; ``opsrail.storage`` implements them for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from opsrail.ingest import Arrival, DeadLetter, Receipt, StoredEvent, rfc3339
from opsrail.model import KINDS, require_one_of


@dataclass(frozen=True, slots=True)
class EventQuery:
    type: str | None = None
    kind: str | None = None
    source: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    before_seq: int | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        require_one_of("kind", self.kind, KINDS)


class EventStore(Protocol):
    def append(self, arrivals: Sequence[Arrival]) -> list[Receipt]:
        """Store new events in one transaction; return a receipt per arrival, in order (duplicates included)."""
        ...

    def find(self, query: EventQuery) -> list[StoredEvent]: ...

    def get(self, source: str, id: str) -> StoredEvent | None: ...

    def count(self) -> int: ...

    def close(self) -> None: ...


class DeadLetterStore(Protocol):
    def add(self, letters: Sequence[DeadLetter]) -> None: ...

    def get(self, id: str) -> DeadLetter | None: ...

    def find(self, status: str | None, limit: int, before_id: str | None) -> list[DeadLetter]: ...

    def record_attempt(
        self,
        id: str,
        *,
        replayed_at: datetime | None,
        receipts: list[dict[str, Any]] | None,
        reason: str | None,
        errors: list[dict[str, str]] | None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: str
    name: str
    role: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    rate_limit: float | None = None
    """Requests per second this token may make (bursts up to twice that); None: no limit."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at) if self.expires_at else None,
            "revoked_at": rfc3339(self.revoked_at) if self.revoked_at else None,
            "rate_limit": self.rate_limit,
        }


class TokenStore(Protocol):
    def add(self, token: ApiToken, token_hash: str) -> None: ...

    def by_hash(self, token_hash: str) -> ApiToken | None: ...

    def all(self) -> list[ApiToken]: ...

    def expire(self, id: str, at: datetime) -> bool: ...

    def revoke(self, id: str, at: datetime) -> bool: ...


class Health(Protocol):
    def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...

    def schema_is_current(self) -> bool: ...
