"""Field parsing shared by the source mappers: reading vendor JSON by path, timestamps, severity scales.

Every reader here takes the JSON path of the value it reads, so that a payload of the wrong shape
fails with :class:`opsrail.model.MappingFailed` naming the exact spot (``$.issue.key``) instead of a
``KeyError`` or ``TypeError`` escaping from deep inside a mapper.

Values the mappers put into canonical data are JSON-native (strings, numbers, booleans, lists and
objects): timestamps are ISO 8601 strings with an offset and amounts are decimal strings, so an
event can be stored or forwarded before :func:`opsrail.ingest._normalise.normalise` has looked at it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, NoReturn
from urllib.parse import urlsplit

from opsrail.model import FieldError, MappingFailed

# Limits of the canonical model (opsrail.model._common): Name is at most 512 characters, Text 20,000.
TITLE_LIMIT = 512
TEXT_LIMIT = 20_000
# Native ids become "<system>:<id>" object ids (at most 256 characters) and parts of event ids and
# sources (at most 512); 200 leaves room for the prefixes and the other parts.
ID_LIMIT = 200
SOURCE_LIMIT = 512

# ---------------------------------------------------------------------------------------------
# Errors and structural readers
# ---------------------------------------------------------------------------------------------


def fail(detail: str, path: str, message: str, *, code: str = "invalid", hint: str | None = None) -> NoReturn:
    """Raise MappingFailed for one bad or missing field."""
    raise MappingFailed(detail, hint=hint, errors=[FieldError(path=path, message=message, code=code)])


def child(path: str, key: str | int) -> str:
    """The JSON path of ``key`` under ``path``: ``child("$.issue", "key")`` -> ``$.issue.key``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"


def type_name(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


class Reader:
    """Reads one vendor's payload, failing with that vendor's wording and hint.

    The ``detail`` and ``hint`` are the same for every field error of a payload (what could not be
    mapped, and what the sender should do), so a mapper builds one Reader and passes paths to it.
    """

    def __init__(self, detail: str, hint: str) -> None:
        self.detail = detail
        self.hint = hint

    def fail(self, path: str, message: str, code: str = "invalid") -> NoReturn:
        fail(self.detail, path, message, code=code, hint=self.hint)

    def missing(self, path: str, what: str) -> NoReturn:
        self.fail(path, f"{what} is required", "missing")

    def obj(self, value: Any, path: str) -> dict[str, Any]:
        """``value`` itself, which must be a JSON object."""
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {type_name(value)}", "type")
        return value

    def opt_obj(self, parent: Mapping[str, Any], key: str, path: str) -> dict[str, Any] | None:
        """An optional object member: absent or null gives None, another type is an error."""
        value = parent.get(key)
        if value is None:
            return None
        return self.obj(value, child(path, key))

    def req_obj(self, parent: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
        value = parent.get(key)
        if value is None:
            self.missing(child(path, key), f"'{key}'")
        return self.obj(value, child(path, key))

    def opt_list(self, parent: Mapping[str, Any], key: str, path: str) -> list[Any]:
        """An optional array member: absent or null gives an empty list."""
        value = parent.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(child(path, key), f"expected an array, got {type_name(value)}", "type")
        return value

    def text(self, parent: Mapping[str, Any], key: str, path: str) -> str | None:
        """An optional scalar member as stripped text; empty text counts as absent.

        Numbers are accepted and rendered as text because vendors are inconsistent about ids
        (Zendesk sends ticket ids as numbers in triggers and as strings in event webhooks).
        """
        value = parent.get(key)
        if value is None or isinstance(value, bool):
            # A boolean where text is expected is not an id or a label; treat it as absent
            # rather than printing "True" into a title.
            return None
        if isinstance(value, str):
            value = value.strip()
            return value or None
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        self.fail(child(path, key), f"expected a string, got {type_name(value)}", "type")

    def req_text(self, parent: Mapping[str, Any], key: str, path: str) -> str:
        value = self.text(parent, key, path)
        if value is None:
            self.missing(child(path, key), f"'{key}'")
        return value

    def key(self, parent: Mapping[str, Any], key: str, path: str) -> str | None:
        """An optional identifier member: text of at most ID_LIMIT characters.

        Identifiers end up in event ids, subjects and object ids, which the envelope and the model
        bound; an over-long one is refused here, at its own path, rather than by normalise later.
        """
        value = self.text(parent, key, path)
        if value is not None and len(value) > ID_LIMIT:
            self.fail(child(path, key), f"expected an identifier of at most {ID_LIMIT} characters", "too_long")
        return value

    def req_key(self, parent: Mapping[str, Any], key: str, path: str) -> str:
        value = self.key(parent, key, path)
        if value is None:
            self.missing(child(path, key), f"'{key}'")
        return value

    def source(self, value: str | None, path: str) -> str | None:
        """A CloudEvents source taken from the payload (a URL), bounded like the envelope's."""
        if value is not None and len(value) > SOURCE_LIMIT:
            self.fail(path, f"expected a URL of at most {SOURCE_LIMIT} characters", "too_long")
        return value

    def text_list(self, parent: Mapping[str, Any], key: str, path: str) -> list[str]:
        """An optional array of strings (labels, tags); blank items are dropped."""
        items: list[str] = []
        for index, item in enumerate(self.opt_list(parent, key, path)):
            if not isinstance(item, str):
                self.fail(child(child(path, key), index), f"expected a string, got {type_name(item)}", "type")
            if item.strip():
                items.append(item.strip())
        return items

    def integer(self, parent: Mapping[str, Any], key: str, path: str) -> int | None:
        """An optional integer member; numeric strings are accepted (ServiceNow sends "3")."""
        value = parent.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            self.fail(child(path, key), "expected an integer, got boolean", "type")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        self.fail(child(path, key), f"expected an integer, got {value!r}", "type")

    def count(self, parent: Mapping[str, Any], key: str, path: str, maximum: int) -> int | None:
        """An optional integer member between 0 and ``maximum`` (counts, amounts in minor units)."""
        value = self.integer(parent, key, path)
        if value is not None and not 0 <= value <= maximum:
            self.fail(child(path, key), f"expected a whole number from 0 to {maximum}, got {value}", "range")
        return value

    def timestamp(self, parent: Mapping[str, Any], key: str, path: str) -> datetime | None:
        """An optional ISO 8601 timestamp member, as an aware UTC datetime."""
        value = parent.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.fail(child(path, key), f"expected a timestamp string, got {type_name(value)}", "type")
        parsed = parse_timestamp(value)
        if parsed is None:
            self.fail(child(path, key), f"not a recognised timestamp: {value!r}", "format")
        return parsed

    def epoch(self, parent: Mapping[str, Any], key: str, path: str, *, millis: bool = False) -> datetime | None:
        """An optional Unix time member (seconds, or milliseconds for Jira), as an aware UTC datetime."""
        value = parent.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(child(path, key), f"expected a Unix timestamp, got {type_name(value)}", "type")
        seconds = value / 1000 if millis else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            self.fail(child(path, key), f"Unix timestamp out of range: {value!r}", "range")


# ---------------------------------------------------------------------------------------------
# Timestamps
# ---------------------------------------------------------------------------------------------

# Jira writes offsets without a colon ("+0000"); Python 3.11 reads those, but normalising first keeps
# the accepted forms explicit and independent of the interpreter's leniency.
_COLONLESS_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")
_ZULU = re.compile(r"[Zz]$")
# Go (Alertmanager) and Zendesk emit nanoseconds; datetime holds microseconds.
_LONG_FRACTION = re.compile(r"(\.\d{6})\d+")
# Formats ISO parsing does not cover. Naive results are read as UTC (see parse_timestamp).
_OTHER_FORMATS = (
    "%d-%m-%Y %H:%M",  # ServiceNow list exports in dd-mm-yyyy locale, e.g. the UCI 498 event log
    "%d-%m-%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%B %d, %Y %H:%M",  # Zendesk placeholders such as {{ticket.created_at}}: "May 07, 2024 13:03"
    "%B %d, %Y",
    "%b %d, %Y",
)
# Year 1 is how Go marshals a zero time.Time; Alertmanager uses it for "not ended yet".
ZERO_TIME_YEAR = 1


def parse_timestamp(text: str) -> datetime | None:
    """Parse the timestamp forms the supported vendors send; None if it is none of them.

    A timestamp without an offset is taken as UTC: ServiceNow's Table API returns raw date-times
    in UTC, and the other sources always send an offset.
    """
    raw = text.strip()
    if not raw:
        return None
    candidate = _LONG_FRACTION.sub(r"\1", _ZULU.sub("+00:00", raw))
    candidate = _COLONLESS_OFFSET.sub(r"\1:\2", candidate)
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        parsed = None
        for fmt in _OTHER_FORMATS:
            try:
                parsed = datetime.strptime(raw, fmt)
            except ValueError:
                continue
            break
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # Only reachable for year-1 sentinels with a positive offset; they mean "unset" anyway.
        return datetime.min.replace(tzinfo=UTC)


def is_zero_time(value: datetime | None) -> bool:
    return value is not None and value.year == ZERO_TIME_YEAR


def iso(value: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 text (UTC), or None."""
    return None if value is None else value.astimezone(UTC).isoformat()


def iso_date(value: datetime | None) -> str | None:
    return None if value is None else date.isoformat(value.astimezone(UTC).date())


# ---------------------------------------------------------------------------------------------
# Severity scales (1 = most severe ... 4)
# ---------------------------------------------------------------------------------------------

JIRA_PRIORITY_SEVERITY: dict[str, int] = {
    "highest": 1,
    "blocker": 1,
    "high": 2,
    "critical": 2,
    "medium": 3,
    "major": 3,
    "low": 4,
    "lowest": 4,
    "minor": 4,
    "trivial": 4,
}

# ServiceNow priorities are "<n> - <label>" in display form and "<n>" as raw values; the number is
# what matters. Priority 5 (Planning) has no place on a four-step scale and shares the lowest step.
SERVICENOW_PRIORITY_SEVERITY: dict[int, int] = {1: 1, 2: 2, 3: 3, 4: 4, 5: 4}

ZENDESK_PRIORITY_SEVERITY: dict[str, int] = {"urgent": 1, "high": 2, "normal": 3, "low": 4}

ALERT_SEVERITY: dict[str, int] = {
    "critical": 1,
    "page": 1,
    "error": 2,
    "major": 2,
    "high": 2,
    "warning": 3,
    "medium": 3,
    "info": 4,
    "low": 4,
    "none": 4,
}


def severity_from_name(table: Mapping[str, int], name: str | None) -> int | None:
    """Look a priority or severity label up case-insensitively; unknown labels give None."""
    if name is None:
        return None
    return table.get(name.strip().lower())


def leading_number(text: str | None) -> int | None:
    """The number a ServiceNow choice value starts with: "3 - Moderate" -> 3, "2" -> 2."""
    if text is None:
        return None
    match = re.match(r"\s*(\d+)", text)
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------------------------------------
# Identity helpers
# ---------------------------------------------------------------------------------------------


def digest(value: Any, length: int = 32) -> str:
    """A stable hex digest of a JSON value (key order does not matter).

    Used where a source gives no delivery id: the same payload always hashes the same, so a
    redelivery dedupes, and any change to it gives a different id.
    """
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]


def url_origin(url: str | None) -> str | None:
    """The scheme and host of a URL (``https://acme.atlassian.net``), or None if it has none."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: not a usable URL
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def clip(text: str | None, limit: int) -> str | None:
    """Text cut to ``limit`` characters (marked with an ellipsis) so a long vendor field still maps.

    Refusing a whole incident because its description is long would lose the incident; a shortened
    description loses only the tail.
    """
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def drop_none(data: dict[str, Any]) -> dict[str, Any]:
    """The dict without None values, so canonical data only carries what the source said."""
    return {key: value for key, value in data.items() if value is not None}
