"""Plain records the ingestion path produces and stores: arrivals, receipts, dead letters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from opsrail.ingest._normalise import NormalisedEvent

ReceiptStatus = Literal["accepted", "duplicate"]


@lru_cache(maxsize=1024)
def rfc3339(moment: datetime) -> str:
    """RFC 3339 text with 'Z' for UTC (memoised: the events of one group share their receipt time)."""
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class Arrival:
    """A valid event as it reached Opsrail: when, and through which channel (api, batch, ingest:jira, replay)."""

    event: NormalisedEvent
    received_at: datetime
    channel: str


@dataclass(slots=True)
class Receipt:
    """What the sender is told. A duplicate carries the first receipt's ``received_at``."""

    id: str
    source: str
    received_at: datetime
    status: ReceiptStatus
    seq: int | None = None

    @property
    def duplicate(self) -> bool:
        return self.status == "duplicate"

    def as_dict(self) -> dict[str, Any]:
        """The receipt as the API shows it; a duplicate shows the first receipt unchanged."""
        return {
            "id": self.id,
            "source": self.source,
            "received_at": rfc3339(self.received_at),
            "status": "accepted",
        }


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    id: str
    source: str
    type: str
    subject: str | None
    time: datetime | None
    received_at: datetime
    kind: str | None
    object_id: str | None
    channel: str
    data: Any
    attributes: dict[str, Any] = field(default_factory=dict)

    def as_cloudevent(self) -> dict[str, Any]:
        """The stored event as a CloudEvent dict, with Opsrail's receipt details as extensions."""
        event: dict[str, Any] = {"specversion": "1.0", "id": self.id, "source": self.source, "type": self.type}
        if self.subject is not None:
            event["subject"] = self.subject
        if self.time is not None:
            event["time"] = self.time.isoformat().replace("+00:00", "Z")
        event.update(self.attributes)
        event["data"] = self.data
        return event

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time.isoformat().replace("+00:00", "Z") if self.time else None,
            "received_at": self.received_at.isoformat().replace("+00:00", "Z"),
            "kind": self.kind,
            "object_id": self.object_id,
            "channel": self.channel,
            "attributes": self.attributes,
            "data": self.data,
        }


DeadLetterStatus = Literal["pending", "replayed"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A payload Opsrail could not accept, kept byte for byte with the reason, until it is replayed."""

    id: str
    received_at: datetime
    channel: str
    source: str | None
    content_type: str | None
    headers: dict[str, str]
    body: bytes
    body_bytes: int
    truncated: bool
    reason: str
    errors: list[dict[str, str]]
    status: DeadLetterStatus = "pending"
    attempts: int = 0
    replayed_at: datetime | None = None
    replay_receipts: list[dict[str, Any]] | None = None

    def as_dict(self, include_body: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "received_at": self.received_at.isoformat().replace("+00:00", "Z"),
            "channel": self.channel,
            "source": self.source,
            "content_type": self.content_type,
            "headers": self.headers,
            "body_bytes": self.body_bytes,
            "truncated": self.truncated,
            "reason": self.reason,
            "errors": self.errors,
            "status": self.status,
            "attempts": self.attempts,
            "replayed_at": self.replayed_at.isoformat().replace("+00:00", "Z") if self.replayed_at else None,
            "replay_receipts": self.replay_receipts,
        }
        if include_body:
            out["body"] = self.body.decode("utf-8", errors="replace")
        return out
