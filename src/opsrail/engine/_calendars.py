"""Business calendars for SLA clocks: working hours in a time zone, public holidays, closed days.

Pure: no clock reads. ``add`` finds when a span of business time has passed; ``elapsed`` measures business
time between two instants. Both step a day at a time, so a 30-day target costs a few dozen iterations.
Holidays come from the ``holidays`` package, per country and optional subdivision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package
import yaml

from opsrail.model import FieldError, InvalidInput, NotFound

Interval = tuple[time, time | None]  # an end of None means midnight at the end of the day
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@lru_cache(maxsize=256)
def _holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays_package.country_holidays(country, subdiv=subdivision, years=year))


@dataclass(frozen=True)
class BusinessCalendar:
    name: str
    timezone: str = "UTC"
    hours: tuple[tuple[Interval, ...], ...] = field(default_factory=lambda: ((),) * 7)
    holidays_country: str | None = None
    holidays_subdivision: str | None = None
    closed: frozenset[date] = frozenset()
    always_open: bool = False

    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _open_spans(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's opening hours as UTC instants (DST handled by converting each local wall-clock bound)."""
        if day in self.closed:
            return []
        if self.holidays_country and day in _holidays(self.holidays_country, self.holidays_subdivision, day.year):
            return []
        zone = self._zone()
        spans = []
        for start, end in self.hours[day.weekday()]:
            begin = datetime.combine(day, start, zone).astimezone(UTC)
            finish = (
                datetime.combine(day + timedelta(days=1), time(0), zone)
                if end is None
                else datetime.combine(day, end, zone)
            ).astimezone(UTC)
            if finish > begin:
                spans.append((begin, finish))
        return spans

    def _local_day(self, moment: datetime) -> date:
        return moment.astimezone(self._zone()).date()

    def is_open(self, at: datetime) -> bool:
        _aware(at)
        if self.always_open:
            return True
        return any(begin <= at < finish for begin, finish in self._open_spans(self._local_day(at)))

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which ``duration`` of business time has passed since ``start``."""
        _aware(start)
        if duration <= timedelta(0):
            return start.astimezone(UTC)
        if self.always_open:
            return (start + duration).astimezone(UTC)
        remaining = duration
        day = self._local_day(start) - timedelta(days=1)
        for _ in range(366 * 5):
            day += timedelta(days=1)
            for begin, finish in self._open_spans(day):
                begin = max(begin, start)
                if finish <= begin:
                    continue
                if finish - begin >= remaining:
                    return begin + remaining
                remaining -= finish - begin
        raise ValueError(f"calendar {self.name!r} has no opening hours within five years")

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants (zero when ``end`` is not after ``start``)."""
        _aware(start)
        _aware(end)
        if end <= start:
            return timedelta(0)
        if self.always_open:
            return end - start
        total = timedelta(0)
        day = self._local_day(start)
        last = self._local_day(end)
        while day <= last:
            for begin, finish in self._open_spans(day):
                lo, hi = max(begin, start), min(finish, end)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total


def _aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError("calendar times must be timezone-aware")


ALWAYS = BusinessCalendar(name="24x7", always_open=True)
_NINE_TO_FIVE: tuple[Interval, ...] = ((time(9), time(17)),)
BUILT_IN: dict[str, BusinessCalendar] = {
    "24x7": ALWAYS,
    "support-24x7": BusinessCalendar(name="support-24x7", always_open=True),
    "business-hours": BusinessCalendar(name="business-hours", hours=(_NINE_TO_FIVE,) * 5 + ((), ())),
}


class CalendarRegistry:
    def __init__(self, calendars: Mapping[str, BusinessCalendar] | None = None) -> None:
        self._calendars = {**BUILT_IN, **(calendars or {})}

    def get(self, name: str) -> BusinessCalendar:
        try:
            return self._calendars[name]
        except KeyError:
            raise NotFound(f"no calendar named {name!r}", hint=f"known: {', '.join(sorted(self._calendars))}") from None

    def names(self) -> list[str]:
        return sorted(self._calendars)


def load_calendars(path: Path) -> dict[str, BusinessCalendar]:
    """Calendars from a YAML file; every problem is reported at once with its path."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"cannot read calendars from {path}: {exc}") from None
    errors: list[FieldError] = []
    found: dict[str, BusinessCalendar] = {}
    entries = document.get("calendars") if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        raise InvalidInput(f"{path} has no `calendars:` mapping", errors=[FieldError("$.calendars", "missing")])
    for name, spec in entries.items():
        at = f"$.calendars.{name}"
        calendar = _calendar(str(name), spec, at, errors)
        if calendar is not None:
            found[str(name)] = calendar
    if errors:
        raise InvalidInput(f"{path} has invalid calendars", errors=errors)
    return found


def _calendar(name: str, spec: Any, at: str, errors: list[FieldError]) -> BusinessCalendar | None:
    if not isinstance(spec, dict):
        errors.append(FieldError(at, "a calendar is a mapping"))
        return None
    zone = str(spec.get("timezone", "UTC"))
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(FieldError(f"{at}.timezone", f"unknown time zone {zone!r}"))
    hours: list[list[Interval]] = [[] for _ in range(7)]
    for key, value in (spec.get("hours") or {}).items():
        days = _days(str(key))
        if days is None:
            errors.append(FieldError(f"{at}.hours.{key}", "use mon..sun or a range like mon-fri"))
            continue
        for text in str(value).split(","):
            interval = _interval(text.strip())
            if interval is None:
                errors.append(FieldError(f"{at}.hours.{key}", f"{text.strip()!r} is not HH:MM-HH:MM with start < end"))
                continue
            for day in days:
                hours[day].append(interval)
    country = (spec.get("holidays") or {}).get("country")
    subdivision = (spec.get("holidays") or {}).get("subdivision")
    if country:
        try:
            _holidays(str(country), subdivision, 2026)
        except (NotImplementedError, KeyError):
            errors.append(FieldError(f"{at}.holidays.country", f"no public holidays known for {country!r}"))
    closed: set[date] = set()
    for index, value in enumerate(spec.get("closed") or []):
        if isinstance(value, date):
            closed.add(value)
        else:
            errors.append(FieldError(f"{at}.closed[{index}]", "a date like 2026-12-24"))
    return BusinessCalendar(
        name=name,
        timezone=zone,
        hours=tuple(tuple(day) for day in hours),
        holidays_country=str(country) if country else None,
        holidays_subdivision=str(subdivision) if subdivision else None,
        closed=frozenset(closed),
    )


def _days(key: str) -> list[int] | None:
    key = key.lower()
    if key in _WEEKDAYS:
        return [_WEEKDAYS.index(key)]
    first, _, last = key.partition("-")
    if first in _WEEKDAYS and last in _WEEKDAYS and _WEEKDAYS.index(first) <= _WEEKDAYS.index(last):
        return list(range(_WEEKDAYS.index(first), _WEEKDAYS.index(last) + 1))
    return None


def _interval(text: str) -> Interval | None:
    start_text, _, end_text = text.partition("-")
    try:
        start = time.fromisoformat(start_text)
        end = None if end_text == "24:00" else time.fromisoformat(end_text)
    except ValueError:
        return None
    if end is not None and end <= start:
        return None
    return (start, end)
