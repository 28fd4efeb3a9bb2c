"""The CloudEvents 1.0 envelope (structured JSON mode) every event travels in."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_CORE_ATTRIBUTES = frozenset(
    {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data", "data_base64"}
)

NonEmpty = Annotated[str, Field(min_length=1, max_length=512)]


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event. Unknown attributes are extensions and must follow the spec's naming rule."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: NonEmpty
    source: NonEmpty
    type: Annotated[str, Field(min_length=1, max_length=256)]
    subject: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    time: datetime | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Any = None
    data_base64: str | None = None

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("time must carry a UTC offset (RFC 3339), for example 2026-01-31T12:00:00Z")
        return value

    @model_validator(mode="after")
    def _extensions(self) -> CloudEvent:
        extras = self.__pydantic_extra__ or {}
        for name, value in extras.items():
            if not _EXTENSION_NAME.match(name):
                raise ValueError(
                    f"extension attribute {name!r} must be 1-20 lowercase letters or digits (CloudEvents 1.0)"
                )
            if value is not None and not isinstance(value, (str, int, bool)):
                raise ValueError(f"extension attribute {name!r} must be a string, integer or boolean")
        if self.data is not None and self.data_base64 is not None:
            raise ValueError("an event carries either data or data_base64, not both")
        return self

    @property
    def extensions(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})

    def key(self) -> tuple[str, str]:
        """The deduplication key: CloudEvents define an event's identity as (source, id)."""
        return (self.source, self.id)


def is_core_attribute(name: str) -> bool:
    return name in _CORE_ATTRIBUTES
