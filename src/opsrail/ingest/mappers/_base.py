"""What a source mapper is: a pure function from a vendor's raw payload to CloudEvent dicts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol


class SourceMapper(Protocol):
    """Maps one vendor payload (decoded JSON) to zero or more CloudEvents 1.0 dicts.

    The dicts it returns are validated by :func:`opsrail.ingest.normalise` afterwards, so a mapper
    builds canonical objects as plain dicts. Event ids must be deterministic (the same delivery
    gives the same id) so that a redelivered webhook is recognised as a duplicate. A payload the
    mapper cannot understand raises :class:`opsrail.model.MappingFailed` with field errors.
    Headers are lower-cased.
    """

    name: str
    description: str

    def map(self, payload: Any, headers: Mapping[str, str]) -> list[dict[str, Any]]: ...


def cloudevent(
    *, id: str, source: str, type: str, data: Any, subject: str | None = None, time: datetime | str | None = None
) -> dict[str, Any]:
    """Build a CloudEvent dict in structured JSON form."""
    event: dict[str, Any] = {"specversion": "1.0", "id": id, "source": source, "type": type, "data": data}
    if subject is not None:
        event["subject"] = subject
    if time is not None:
        event["time"] = time.isoformat() if isinstance(time, datetime) else time
    event["datacontenttype"] = "application/json"
    return event


def from_epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
