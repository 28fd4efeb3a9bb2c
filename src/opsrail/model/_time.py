"""Ports for time and identifiers; the outer layers inject real ones, tests inject fakes."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """Tells the current time (timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class IdFactory(Protocol):
    """Makes new unique, roughly time-ordered identifiers with a readable prefix."""

    def new(self, prefix: str) -> str: ...
