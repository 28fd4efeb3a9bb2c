"""The CloudEvents 1.0 envelope (structured JSON mode) every event travels in."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from opsrail.model._time import in_utc_range

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
    time: Annotated[AwareDatetime, AfterValidator(in_utc_range)] | None = Field(
        default=None, description="RFC 3339 with a UTC offset"
    )
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Any = None
    data_base64: str | None = None

    def problems(self) -> list[tuple[str, str]]:
        """What the spec forbids beyond field types: (attribute, message) pairs, empty when the event is valid.

        Kept out of field validation so each problem can name its attribute; ``opsrail.ingest.normalise``
        reports them as errors with JSON paths.
        """
        found: list[tuple[str, str]] = []
        for name, value in (self.__pydantic_extra__ or {}).items():
            if not _EXTENSION_NAME.fullmatch(name):
                found.append(
                    (name, "an extension attribute name is 1-20 lowercase letters or digits (CloudEvents 1.0)")
                )
            elif value is not None and not isinstance(value, (str, int, bool)):
                found.append((name, "an extension attribute is a string, integer or boolean"))
        if self.data is not None and self.data_base64 is not None:
            found.append(("data_base64", "an event carries either data or data_base64, not both"))
        return found

    def optional_attributes(self) -> dict[str, Any]:
        """The attributes beyond id, source, type, subject, time and data that the event carries."""
        extras = self.__pydantic_extra__
        if not (extras or self.datacontenttype or self.dataschema or self.data_base64):
            return {}
        found: dict[str, Any] = dict(extras or {})
        if self.datacontenttype is not None:
            found["datacontenttype"] = self.datacontenttype
        if self.dataschema is not None:
            found["dataschema"] = self.dataschema
        if self.data_base64 is not None:
            found["data_base64"] = self.data_base64
        return found

    @property
    def extensions(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})

    def key(self) -> tuple[str, str]:
        """The deduplication key: CloudEvents define an event's identity as (source, id)."""
        return (self.source, self.id)


def is_core_attribute(name: str) -> bool:
    return name in _CORE_ATTRIBUTES
