"""The value types of table inputs and outputs: their names, how a value is checked and coerced, and samples.

A type is one of ``string``, ``int``, ``double``, ``bool``, ``list``, ``map``, ``timestamp`` and ``duration``, the
CEL types an expression sees (``int`` is CEL's 64-bit int). Coercion is deliberately narrow: an int is accepted
for a ``double``, an RFC 3339 string for a ``timestamp`` and an ISO 8601 (``PT1H30M``) or CEL (``1h30m``) string
for a ``duration``; nothing else changes type. ``NaN`` is refused as a ``double`` because CEL cannot order it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

ValueType = Literal["string", "int", "double", "bool", "list", "map", "timestamp", "duration"]
VALUE_TYPES: tuple[str, ...] = get_args(ValueType)

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


class CoercionError(ValueError):
    """A value that is not of, and cannot be read as, the declared type; the message says what was given."""


_JSON_NAMES = {bool: "boolean", str: "string", int: "integer", float: "number", dict: "object", list: "array"}


def shown(value: Any) -> str:
    """A value as a message quotes it: its type, named as JSON and YAML name it where they have it, and a short
    repr (``string 'high'``, ``number 1.5``, ``null``)."""
    if value is None:
        return "null"
    text = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    if len(text) > 60:
        text = text[:59] + "…"
    return f"{_JSON_NAMES.get(type(value), type(value).__name__)} {text}"


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise CoercionError(f"expected a string, got {shown(value)}")


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if _INT_MIN <= value <= _INT_MAX:
            return value
        raise CoercionError(f"{value} is outside the 64-bit int range")
    raise CoercionError(f"expected an int, got {shown(value)}")


def _double(value: Any) -> float:
    if isinstance(value, float):
        if math.isnan(value):
            raise CoercionError("NaN is not a usable double")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    raise CoercionError(f"expected a double (or an int), got {shown(value)}")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise CoercionError(f"expected true or false, got {shown(value)}")


def _list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    raise CoercionError(f"expected a list, got {shown(value)}")


def _map(value: Any) -> dict[Any, Any]:
    if isinstance(value, dict):
        return dict(value)
    raise CoercionError(f"expected a map, got {shown(value)}")


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise CoercionError(f"expected an RFC 3339 timestamp, got {value!r}") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise CoercionError("a timestamp needs a time zone offset (2026-01-31T09:00:00Z)")
        return value.astimezone(UTC)
    raise CoercionError(f"expected a timestamp, got {shown(value)}")


_ISO_DURATION = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_CEL_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)")
_CEL_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        text = value.strip()
        sign = -1 if text.startswith("-") else 1
        body = text.lstrip("+-")
        iso = _ISO_DURATION.match(body)
        if iso and body not in ("P", "PT") and not body.endswith("T"):
            parts = {key: float(found) for key, found in iso.groupdict().items() if found}
            return sign * timedelta(
                days=parts.get("d", 0), hours=parts.get("h", 0), minutes=parts.get("m", 0), seconds=parts.get("s", 0)
            )
        pieces = _CEL_DURATION.findall(body)
        if pieces and "".join(number + unit for number, unit in pieces) == body:
            return sign * timedelta(seconds=sum(float(number) * _CEL_UNITS[unit] for number, unit in pieces))
        raise CoercionError(f"expected a duration such as PT1H30M or 1h30m, got {value!r}")
    raise CoercionError(f"expected a duration, got {shown(value)}")


COERCE: dict[str, Callable[[Any], Any]] = {
    "string": _string,
    "int": _int,
    "double": _double,
    "bool": _bool,
    "list": _list,
    "map": _map,
    "timestamp": _timestamp,
    "duration": _duration,
}
"""Per type, the function that returns the value as that type or raises :class:`CoercionError`."""

SAMPLES: dict[str, tuple[Any, ...]] = {
    "string": ("sample", ""),
    "int": (1, 0),
    "double": (1.5, 0.0),
    "bool": (True, False),
    "list": ([], ["sample"]),
    "map": ({}, {"key": "sample"}),
    "timestamp": (datetime(2026, 1, 31, 9, 0, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC)),
    "duration": (timedelta(hours=1), timedelta(0)),
}
"""Per type, values used to type-check expressions by evaluating them (first one first)."""


def type_of(value: Any) -> str | None:
    """The table type a CEL result has, or None for values no declared type holds (null, bytes, uint)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, datetime):
        return "timestamp"
    if isinstance(value, timedelta):
        return "duration"
    return None
