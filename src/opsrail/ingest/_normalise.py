"""Turning a raw CloudEvent (a decoded JSON value) into a validated, normalised event.

Events of Opsrail's own types (``com.opsrail.<kind>.<verb>``) must carry a valid canonical object of
that kind; other types are kept as they came (``kind`` is None) so nothing a source sends is refused
merely for being unfamiliar.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from opsrail.model import KINDS, CloudEvent, FieldError, InvalidInput, json_path, kind_of


@dataclass(frozen=True, slots=True)
class NormalisedEvent:
    """A valid event, ready to store. ``data`` is JSON-ready (canonical form for canonical kinds)."""

    event: CloudEvent
    kind: str | None
    object_id: str | None
    data: Any
    subject: str | None

    @property
    def source(self) -> str:
        return self.event.source

    @property
    def id(self) -> str:
        return self.event.id


def field_errors(exc: ValidationError, root: str = "$") -> list[FieldError]:
    return [
        FieldError(path=json_path(tuple(err["loc"]), root), message=err["msg"], code=err["type"])
        for err in exc.errors(include_url=False)
    ]


def normalise(raw: Any, root: str = "$") -> NormalisedEvent:
    """Validate one event; raise InvalidInput naming the JSON path of every error."""
    if not isinstance(raw, dict):
        raise InvalidInput(
            "an event must be a JSON object",
            hint="send one CloudEvents 1.0 event in structured JSON mode",
            errors=[FieldError(root, f"expected an object, got {type(raw).__name__}", "type")],
        )
    try:
        event = CloudEvent.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(
            "the event is not a valid CloudEvents 1.0 event",
            hint="required: specversion '1.0', id, source, type; see GET /v1/schemas/cloudevent",
            errors=field_errors(exc, root),
        ) from None
    kind = kind_of(event.type)
    if kind is None:
        return NormalisedEvent(event=event, kind=None, object_id=None, data=event.data, subject=event.subject)
    try:
        obj = KINDS[kind].model_validate(event.data)
    except ValidationError as exc:
        raise InvalidInput(
            f"the data of a {event.type} event is not a valid {kind}",
            hint=f"see GET /v1/schemas/{kind}",
            errors=field_errors(exc, f"{root}.data"),
        ) from None
    data = obj.model_dump(mode="json", exclude_none=True)
    # A canonical event is about its object: the subject defaults to the object's id.
    subject = event.subject if event.subject is not None else obj.id
    return NormalisedEvent(event=event, kind=kind, object_id=obj.id, data=data, subject=subject)
