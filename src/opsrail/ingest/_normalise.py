"""Turning a raw CloudEvent (a decoded JSON value) into a validated, normalised event.

Events of Opsrail's own types (``com.opsrail.<kind>.<verb>``) must carry a valid canonical object of
that kind; other types are kept as they came (``kind`` is None) so nothing a source sends is refused
merely for being unfamiliar.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import orjson
from pydantic import ValidationError, create_model

from opsrail.model import (
    EVENT_TYPE_PREFIX,
    KINDS,
    CanonicalObject,
    CloudEvent,
    FieldError,
    InvalidInput,
    json_path,
    kind_of,
)


class NormalisedEvent:
    """A valid event, ready to store.

    ``data`` is JSON-ready: the canonical form (defaults filled, ``None`` left out) for canonical kinds,
    the data as sent otherwise. For canonical kinds it is rendered on first use, because the hot path
    only needs its JSON text (``data_json``), which pydantic writes directly.
    """

    __slots__ = ("_data", "_json", "_object", "event", "kind", "object_id", "subject")

    def __init__(
        self,
        event: CloudEvent,
        kind: str | None,
        object_id: str | None,
        data: Any,
        subject: str | None,
        *,
        canonical: CanonicalObject | None = None,
    ) -> None:
        self.event = event
        self.kind = kind
        self.object_id = object_id
        self.subject = subject
        self._object = canonical
        self._data = data
        self._json: bytes | None = None

    @property
    def data(self) -> Any:
        if self._object is not None and self._data is None:
            self._data = self._object.model_dump(mode="json", exclude_none=True)
        return self._data

    def data_json(self) -> bytes:
        """The data as JSON text, as it is stored."""
        if self._json is None:
            if self._object is not None:
                self._json = self._object.__pydantic_serializer__.to_json(self._object, exclude_none=True)
            else:
                self._json = orjson.dumps(self._data)
        return self._json

    @property
    def source(self) -> str:
        return self.event.source

    @property
    def id(self) -> str:
        return self.event.id


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages people read."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


def field_errors(exc: ValidationError, root: str = "$") -> list[FieldError]:
    return [
        FieldError(path=json_path(tuple(err["loc"]), root), message=err["msg"], code=err["type"])
        for err in exc.errors(include_url=False)
    ]


@cache
def _envelope(kind: str) -> type[CloudEvent]:
    """A CloudEvent whose data is the canonical object of ``kind``: one validation pass for both."""
    model = KINDS[kind]
    return create_model(f"{model.__name__}Event", __base__=CloudEvent, data=(model, ...))


def normalise(raw: Any, root: str = "$") -> NormalisedEvent:
    """Validate one event; raise InvalidInput naming the JSON path of every error."""
    if not isinstance(raw, dict):
        raise InvalidInput(
            "an event must be a JSON object",
            hint="send one CloudEvents 1.0 event in structured JSON mode",
            errors=[FieldError(root, f"expected an object, got {json_type(raw)}", "type")],
        )
    declared = raw.get("type")
    kind = kind_of(declared) if isinstance(declared, str) else None
    if kind is None and isinstance(declared, str) and declared.startswith(EVENT_TYPE_PREFIX):
        raise InvalidInput(
            f"{declared!r} is in Opsrail's namespace but names no canonical kind and verb",
            hint=f"use com.opsrail.<kind>.<verb> with a kind from: {', '.join(KINDS)}",
            errors=[FieldError(f"{root}.type", "unknown canonical event type", "unknown_type")],
        )
    try:
        event = (_envelope(kind) if kind else CloudEvent).model_validate(raw)
    except ValidationError as exc:
        errors = field_errors(exc, root)
        if kind and all(e.path.startswith(f"{root}.data") for e in errors):
            raise InvalidInput(
                f"the data of a {declared} event is not a valid {kind}",
                hint=f"see GET /v1/schemas/{kind}",
                errors=errors,
            ) from None
        raise InvalidInput(
            "the event is not a valid CloudEvents 1.0 event",
            hint="required: specversion '1.0', id, source, type; see GET /v1/schemas/cloudevent",
            errors=errors,
        ) from None
    if event.__pydantic_extra__ or event.data_base64 is not None:
        problems = event.problems()
        if problems:
            raise InvalidInput(
                "the event breaks a CloudEvents 1.0 rule",
                errors=[FieldError(json_path((name,), root), message, "cloudevents") for name, message in problems],
            )
    if kind is None:
        return NormalisedEvent(event, None, None, event.data, event.subject)
    obj: CanonicalObject = event.data
    # A canonical event is about its object: the subject defaults to the object's id.
    subject = event.subject if event.subject is not None else obj.id
    return NormalisedEvent(event, kind, obj.id, None, subject, canonical=obj)
