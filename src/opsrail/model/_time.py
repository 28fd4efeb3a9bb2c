"""Time: the ports for the clock and identifiers (the outer layers inject real ones, tests inject fakes), and the
date-time type every request field and parameter uses, so that each one converts to UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Protocol

from pydantic import AfterValidator


def in_utc_range(value: datetime) -> datetime:
    """``value`` unchanged if its UTC moment is a date Python can hold; a ValueError (a field error) otherwise.

    Times are stored and compared in UTC: ``0001-01-01T01:00+05:00`` or ``9999-12-31T23:00-05:00`` are valid
    RFC 3339 but have no UTC date in years 1 to 9999, and converting them would fail deep inside a store.
    """
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("the time falls outside years 1 to 9999 once converted to UTC") from None
    return value


UtcMoment = Annotated[datetime, AfterValidator(in_utc_range)]
"""A date-time that can be converted to UTC; for request fields and query parameters."""


class Clock(Protocol):
    """Tells the current time (timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class IdFactory(Protocol):
    """Makes new unique, roughly time-ordered identifiers with a readable prefix."""

    def new(self, prefix: str) -> str: ...
