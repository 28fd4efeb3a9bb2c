"""Business calendars: when SLA clocks and durable timers count time.

This module owns ``BusinessCalendar`` (weekly opening hours in the local wall-clock time of an IANA zone, public
holidays from the ``holidays`` package, extra closed dates), the built-in calendars, reading calendars from YAML
(``load_calendars``) and the ``CalendarRegistry`` the engine asks by name.

Pure: no clock reads; the only I/O is reading the YAML file the caller names.

What "open" means: a calendar is open at an instant when the instant's local date is neither a public holiday nor
a closed date and its local wall-clock time lies in one of that weekday's intervals ``[start, end)``. Every instant
has exactly one local date, so the open stretches of different days never overlap, and daylight-saving days are as
long as they really are: 00:00-24:00 lasts 23 or 25 hours, an interval inside the spring-forward gap does not
happen that day, and one inside the autumn overlap happens twice.

``add`` and ``elapsed`` walk the open stretches a day at a time (a 30-day target costs a few months of days, never
minutes); holiday sets are built once per country and year, and each day's stretches are cached.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package
import yaml

from opsrail.model import FieldError, InvalidInput, NotFound

Interval = tuple[time, time | None]
"""Opening hours ``[start, end)`` in local wall-clock time; an end of ``None`` is 24:00, the midnight ending the day."""

WeekHours = tuple[tuple[Interval, ...], ...]
"""Seven days of intervals, Monday first."""

_DAY = timedelta(days=1)
_ZERO = timedelta(0)
_MIDNIGHT = time(0)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Offsets are probed this often when looking for daylight-saving transitions; real zones never change twice
# within three hours, so no transition is missed.
_PROBE = timedelta(hours=3)
# A calendar that stays shut this long (say only closed dates, or hours only inside a DST gap) is a configuration
# mistake: ``add`` stops with an error instead of walking on for ever.
_MAX_SHUT_DAYS = 3 * 366
_CALENDAR_KEYS = frozenset({"timezone", "hours", "holidays", "closed"})
_HOLIDAY_KEYS = frozenset({"country", "subdivision"})


@dataclass(frozen=True)
class BusinessCalendar:
    """Weekly opening hours in a time zone, minus public holidays and closed dates.

    All methods take timezone-aware datetimes (naive ones raise ``ValueError``) and return UTC. A calendar whose
    every day is 00:00-24:00 with no holidays or closed dates is always open and does plain arithmetic.
    """

    name: str
    timezone: str = "UTC"
    hours: WeekHours = ((),) * 7
    holidays_country: str | None = None
    holidays_subdivision: str | None = None
    extra_closed_dates: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        # Normalise so equal calendars compare (and cache) equal: sorted tuples, and an end of 00:00 read as 24:00
        # (an interval cannot end at the midnight that starts it).
        hours = tuple(
            tuple(sorted(((start, None if end == _MIDNIGHT else end) for start, end in day), key=_start_of))
            for day in self.hours
        )
        object.__setattr__(self, "hours", hours)
        object.__setattr__(self, "extra_closed_dates", frozenset(self.extra_closed_dates))
        problems: list[str] = []
        if zone_problem := _zone_problem(self.timezone):
            problems.append(zone_problem)
        if len(hours) != 7:
            problems.append(f"hours needs 7 days (Monday first), got {len(hours)}")
        for weekday, intervals in zip(_WEEKDAYS, hours, strict=False):
            problems += [f"{weekday}: {problem}" for problem in _day_problems(intervals)]
        if self.holidays_country is not None:
            problems += [message for _, message in _holiday_problems(self.holidays_country, self.holidays_subdivision)]
        elif self.holidays_subdivision is not None:
            problems.append("a holidays subdivision needs a holidays country")
        if problems:
            raise ValueError(f"calendar {self.name!r}: {'; '.join(problems)}")

    @cached_property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _always_open(self) -> bool:
        # Full days in any zone cover every instant, daylight saving or not, so the zone does not matter here.
        full_day = ((_MIDNIGHT, None),)
        return (
            self.holidays_country is None
            and not self.extra_closed_dates
            and all(_merged(day) == full_day for day in self.hours)
        )

    def is_open(self, at: datetime) -> bool:
        """Whether business time runs at ``at`` (opening instants are open, closing instants are not)."""
        _require_aware(at)
        if self._always_open:
            return True
        local = at.astimezone(self._zone)
        day = local.date()
        if not self._opens_on(day):
            return False
        # Compare wall-clock readings; the naive value keeps a repeated autumn hour open both times it happens.
        wall = local.replace(tzinfo=None, fold=0)
        return any(begin <= wall < finish for begin, finish in _wall_intervals(day, self.hours[day.weekday()]))

    def next_open(self, at: datetime) -> datetime:
        """The first open instant at or after ``at``, in UTC; ``at`` itself when the calendar is open then."""
        _require_aware(at)
        start = at.astimezone(UTC)
        if self._always_open:
            return start
        for begin, _ in self._stretches(start, until=None):
            return max(begin, start)
        raise AssertionError("unreachable: _stretches without a bound either yields or raises")  # pragma: no cover

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant, in UTC, by which ``duration`` of business time has passed since ``start``.

        Before opening hours the clock waits for the next opening; a duration that exactly uses up an opening
        interval ends at its closing time, not at the next opening. A zero duration gives ``start``.
        """
        _require_aware(start)
        if duration < _ZERO:
            raise ValueError(f"cannot add a negative duration ({duration}) of business time")
        begin = start.astimezone(UTC)
        # Aware arithmetic in a zone other than UTC is wall-clock arithmetic, so everything is done in UTC.
        if duration == _ZERO or self._always_open:
            return begin + duration
        remaining = duration
        for open_at, close_at in self._stretches(begin, until=None):
            available = close_at - max(open_at, begin)
            if available >= remaining:
                return max(open_at, begin) + remaining
            remaining -= available
        raise AssertionError("unreachable: _stretches without a bound either yields or raises")  # pragma: no cover

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants; zero when ``end`` is not after ``start``."""
        _require_aware(start)
        _require_aware(end)
        begin, finish = start.astimezone(UTC), end.astimezone(UTC)
        if finish <= begin:
            return _ZERO
        if self._always_open:
            return finish - begin
        total = _ZERO
        for open_at, close_at in self._stretches(begin, until=finish):
            if open_at >= finish:
                break
            total += min(close_at, finish) - max(open_at, begin)
        return total

    def _opens_on(self, day: date) -> bool:
        if day in self.extra_closed_dates:
            return False
        if self.holidays_country is None:
            return True
        return day not in _public_holidays(self.holidays_country, self.holidays_subdivision, day.year)

    def _stretches(self, start: datetime, until: datetime | None) -> Iterator[tuple[datetime, datetime]]:
        """Open stretches ``[begin, finish)`` in UTC that end after ``start``, earliest first.

        With ``until``, stops once no later stretch can begin before it; without, raises ``ValueError`` when the
        calendar stays shut for ``_MAX_SHUT_DAYS``.
        """
        if until is None and not any(self.hours):
            raise ValueError(f"calendar {self.name!r} has no opening hours")
        # Where a zone falls back across midnight, the end of the previous local day can come after ``start``, so
        # the walk begins a day early; a heap puts stretches in order in case such days interleave.
        day = start.astimezone(self._zone).date() - _DAY
        pending: list[tuple[datetime, datetime]] = []
        shut_days = 0
        while True:
            stretches = _day_stretches(self, day)
            shut_days = 0 if stretches else shut_days + 1
            for stretch in stretches:
                if stretch[1] > start:
                    heapq.heappush(pending, stretch)
            # Every instant of a later local day lies after this day's midnight read as UTC (offsets stay within
            # a day), so stretches beginning by then are final and can be handed out in order.
            settled = datetime.combine(day, _MIDNIGHT, UTC)
            while pending and pending[0][0] <= settled:
                yield heapq.heappop(pending)
            if until is not None and settled >= until:
                return
            if until is None and shut_days > _MAX_SHUT_DAYS:
                raise ValueError(f"calendar {self.name!r} stays closed for more than {_MAX_SHUT_DAYS} days after {day}")
            day += _DAY


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"calendar times must be timezone-aware, got naive {moment.isoformat()}")


def _wall_intervals(day: date, intervals: tuple[Interval, ...]) -> Iterator[tuple[datetime, datetime]]:
    """A day's intervals as naive local wall-clock datetimes."""
    for start, end in intervals:
        finish = datetime.combine(day + _DAY, _MIDNIGHT) if end is None else datetime.combine(day, end)
        yield datetime.combine(day, start), finish


def _start_of(interval: Interval) -> time:
    # Sort by start only: an end of None does not compare with a time, and a stray tzinfo is reported, not a crash.
    return interval[0].replace(tzinfo=None)


def _merged(intervals: tuple[Interval, ...]) -> tuple[Interval, ...]:
    """Sorted, non-overlapping intervals with touching ones joined (08:00-12:00 + 12:00-24:00 is 08:00-24:00)."""
    joined: list[Interval] = []
    for start, end in intervals:
        if joined and joined[-1][1] == start:
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return tuple(joined)


@lru_cache(maxsize=4096)
def _day_stretches(calendar: BusinessCalendar, day: date) -> tuple[tuple[datetime, datetime], ...]:
    """The UTC stretches during which ``calendar`` is open on local date ``day``.

    Each wall-clock interval is mapped through every constant-offset segment of the day: in a spring-forward gap
    the missing wall-clock times map to nothing, in an autumn overlap the repeated ones map twice.
    """
    intervals = calendar.hours[day.weekday()]
    if not intervals or not calendar._opens_on(day):
        return ()
    segments = _offset_segments(calendar.timezone, day)
    stretches: list[tuple[datetime, datetime]] = []
    for wall_begin, wall_end in _wall_intervals(day, _merged(intervals)):
        for segment_begin, segment_end, offset in segments:
            begin = max(segment_begin, (wall_begin - offset).replace(tzinfo=UTC))
            finish = min(segment_end, (wall_end - offset).replace(tzinfo=UTC))
            if finish > begin:
                stretches.append((begin, finish))
    stretches.sort()
    # Join pieces that touch, such as the halves of an interval across the spring-forward gap.
    joined: list[tuple[datetime, datetime]] = []
    for begin, finish in stretches:
        if joined and joined[-1][1] == begin:
            joined[-1] = (joined[-1][0], finish)
        else:
            joined.append((begin, finish))
    return tuple(joined)


@lru_cache(maxsize=4096)
def _offset_segments(zone_key: str, day: date) -> tuple[tuple[datetime, datetime, timedelta], ...]:
    """UTC segments ``[begin, end)`` of constant UTC offset covering every instant whose local date is ``day``.

    zoneinfo does not expose its transitions, so they are found by probing the offset and bisecting to the second
    where it changes (tzdata transitions fall on whole seconds).
    """
    zone = ZoneInfo(zone_key)
    # An offset is less than a day, so the instants of local date ``day`` lie within a day either side of it.
    begin = datetime.combine(day - _DAY, _MIDNIGHT, UTC)
    end = begin + 3 * _DAY
    segments: list[tuple[datetime, datetime, timedelta]] = []
    offset = _offset_at(zone, begin)
    probe = begin
    while probe < end:
        ahead = min(probe + _PROBE, end)
        if _offset_at(zone, ahead) == offset:
            probe = ahead
            continue
        low, high = int(probe.timestamp()), int(ahead.timestamp())
        while high - low > 1:
            middle = (low + high) // 2
            if _offset_at(zone, datetime.fromtimestamp(middle, UTC)) == offset:
                low = middle
            else:
                high = middle
        change = datetime.fromtimestamp(high, UTC)
        segments.append((begin, change, offset))
        begin, offset, probe = change, _offset_at(zone, change), change
    segments.append((begin, end, offset))
    return tuple(segments)


def _offset_at(zone: ZoneInfo, moment: datetime) -> timedelta:
    offset = moment.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always knows the offset of an aware instant
    return offset


@lru_cache(maxsize=512)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    return frozenset(holidays_package.country_holidays(country, subdiv=subdivision, years=year))


@lru_cache(maxsize=1)
def _supported_countries() -> dict[str, list[str]]:
    return dict(holidays_package.list_supported_countries())


def _zone_problem(key: str) -> str | None:
    try:
        ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {key!r} (use an IANA name such as Europe/Amsterdam)"
    return None


def _day_problems(intervals: tuple[Interval, ...]) -> list[str]:
    """What is wrong with one day's sorted intervals (normalised: an end of ``None`` is 24:00)."""
    aware = [i for i in intervals if i[0].tzinfo is not None or (i[1] is not None and i[1].tzinfo is not None)]
    if aware:
        # Aware and naive times do not compare, so the other checks would only crash.
        return [f"{_show(interval)} must be wall-clock time without a time zone" for interval in aware]
    problems = [
        f"{_show((start, end))} ends before it starts (an interval cannot cross midnight)"
        for start, end in intervals
        if end is not None and end <= start
    ]
    for (start, end), (next_start, next_end) in itertools.pairwise(intervals):
        if end is None or end > next_start:
            problems.append(f"{_show((start, end))} overlaps {_show((next_start, next_end))}")
    return problems


def _holiday_problems(country: str, subdivision: str | None) -> list[tuple[str, str]]:
    """(field, message) pairs for an unknown holidays country or subdivision."""
    supported = _supported_countries()
    if country not in supported:
        return [("country", f"no public holidays known for country {country!r} (use an ISO code such as NL or US)")]
    if subdivision is None:
        return []
    try:
        holidays_package.country_holidays(country, subdiv=subdivision)
    except NotImplementedError:
        known = ", ".join(supported[country]) or "none"
        return [("subdivision", f"{country} has no subdivision {subdivision!r} (known: {known})")]
    return []


def _show(interval: Interval) -> str:
    start, end = interval
    return f"{start.isoformat('minutes')}-{'24:00' if end is None else end.isoformat('minutes')}"


_ALL_DAY: tuple[Interval, ...] = ((_MIDNIGHT, None),)
_NINE_TO_FIVE: tuple[Interval, ...] = ((time(9), time(17)),)

BUILT_IN: Mapping[str, BusinessCalendar] = MappingProxyType(
    {
        "24x7": BusinessCalendar(name="24x7", hours=(_ALL_DAY,) * 7),
        "support-24x7": BusinessCalendar(name="support-24x7", hours=(_ALL_DAY,) * 7),
        "business-hours": BusinessCalendar(name="business-hours", hours=(_NINE_TO_FIVE,) * 5 + ((), ())),
    }
)
"""The calendars every registry knows: ``24x7`` (alias ``support-24x7``) and Monday-Friday 09:00-17:00 UTC."""


class CalendarRegistry:
    """The built-in calendars plus configured ones, by name; a configured calendar may replace a built-in one."""

    def __init__(self, calendars: Mapping[str, BusinessCalendar] | None = None) -> None:
        self._calendars = {**BUILT_IN, **(calendars or {})}

    def get(self, name: str) -> BusinessCalendar:
        try:
            return self._calendars[name]
        except KeyError:
            raise NotFound(
                f"no calendar named {name!r}",
                hint=f"known: {', '.join(self.names())}; add others with a calendars file",
            ) from None

    def names(self) -> list[str]:
        return sorted(self._calendars)

    def __contains__(self, name: object) -> bool:
        return name in self._calendars


def load_calendars(path: Path) -> dict[str, BusinessCalendar]:
    """Calendars from a YAML file with a top-level ``calendars:`` mapping.

    Raises ``InvalidInput`` listing every problem in the file, each located by a path such as
    ``$.calendars.emea-support.hours.mon-fri``.
    """
    try:
        # _DatesAsText is a SafeLoader with one resolver fewer, so this is as safe as yaml.safe_load.
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_DatesAsText)  # noqa: S506
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise InvalidInput(f"cannot read calendars from {path}: {exc}") from None
    entries = document.get("calendars") if isinstance(document, dict) else None
    if not isinstance(entries, dict):
        raise InvalidInput(
            f"{path} has no `calendars:` mapping",
            hint="see docs/playbooks.md, SLA clocks and business calendars",
            errors=[FieldError("$.calendars", "a mapping of calendar names to calendars", "missing")],
        )
    errors: list[FieldError] = []
    found: dict[str, BusinessCalendar] = {}
    for name, spec in entries.items():
        calendar = _read_calendar(str(name), spec, f"$.calendars.{name}", errors)
        if calendar is not None:
            found[str(name)] = calendar
    if errors:
        raise InvalidInput(f"{path} has invalid calendars", errors=errors)
    return found


class _DatesAsText(yaml.SafeLoader):
    """A safe loader that leaves ``2026-12-24`` as text: PyYAML would turn ``2026-02-30`` into an error for the whole
    file, where one bad date deserves one field error."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read_calendar(name: str, spec: Any, at: str, errors: list[FieldError]) -> BusinessCalendar | None:
    """One calendar from its YAML mapping, or ``None`` after adding its problems to ``errors``."""
    if not isinstance(spec, dict):
        errors.append(FieldError(at, "a calendar is a mapping with timezone, hours, holidays and closed"))
        return None
    before = len(errors)
    for key in spec:
        if key not in _CALENDAR_KEYS:
            errors.append(FieldError(f"{at}.{key}", f"unknown key (use {', '.join(sorted(_CALENDAR_KEYS))})"))
    zone = spec.get("timezone")
    if zone is None:
        errors.append(FieldError(f"{at}.timezone", "required: an IANA time zone such as Europe/Amsterdam", "missing"))
    elif problem := _zone_problem(str(zone)):
        errors.append(FieldError(f"{at}.timezone", problem))
    hours = _read_hours(spec.get("hours"), f"{at}.hours", errors)
    country, subdivision = _read_holidays(spec.get("holidays"), f"{at}.holidays", errors)
    closed = _read_closed(spec.get("closed"), f"{at}.closed", errors)
    if len(errors) > before:
        return None
    try:
        return BusinessCalendar(
            name=name,
            timezone=str(zone),
            hours=hours,
            holidays_country=country,
            holidays_subdivision=subdivision,
            extra_closed_dates=closed,
        )
    except ValueError as exc:  # every check above runs first, so this is a safety net for a missed case
        errors.append(FieldError(at, str(exc)))
        return None


def _read_hours(spec: Any, at: str, errors: list[FieldError]) -> WeekHours:
    """``{mon-fri: "08:00-12:00, 13:00-18:00", sat: "10:00-14:00", sun: closed}``; days not named are closed."""
    week: list[list[Interval]] = [[] for _ in range(7)]
    if spec is None:
        errors.append(
            FieldError(at, 'required: opening hours per weekday, such as {mon-fri: "09:00-17:00"}', "missing")
        )
        return ()
    if not isinstance(spec, dict):
        errors.append(FieldError(at, 'a mapping of weekdays to hours, such as {mon-fri: "09:00-17:00"}'))
        return ()
    for key, value in spec.items():
        days = _weekdays(str(key))
        if days is None:
            errors.append(FieldError(f"{at}.{key}", "unknown weekday: use mon..sun or a range such as mon-fri"))
            continue
        for interval in _read_intervals(value, f"{at}.{key}", errors):
            for day in days:
                week[day].append(interval)
    for weekday, intervals in zip(_WEEKDAYS, week, strict=True):
        normalised = tuple(sorted(intervals, key=_start_of))
        errors.extend(FieldError(at, f"{weekday}: {problem}") for problem in _day_problems(normalised))
    return tuple(tuple(day) for day in week)


def _read_intervals(value: Any, at: str, errors: list[FieldError]) -> list[Interval]:
    if value is None or value == "closed":
        return []
    texts = [str(item) for item in value] if isinstance(value, list) else str(value).split(",")
    intervals = []
    for text in texts:
        interval = _parse_interval(text.strip())
        if interval is None:
            errors.append(
                FieldError(at, f"{text.strip()!r} is not HH:MM-HH:MM with start before end (24:00 ends the day)")
            )
        else:
            intervals.append(interval)
    return intervals


def _parse_interval(text: str) -> Interval | None:
    start_text, dash, end_text = text.partition("-")
    if not dash:
        return None
    try:
        start = time.fromisoformat(start_text.strip())
        end_text = end_text.strip()
        end = None if end_text in ("24:00", "00:00") else time.fromisoformat(end_text)
    except ValueError:
        return None
    if start.tzinfo is not None or (end is not None and (end.tzinfo is not None or end <= start)):
        return None
    return (start, end)


def _weekdays(key: str) -> list[int] | None:
    """Weekday numbers (Monday 0) for ``mon``, ``monday`` or a forward range such as ``mon-fri``."""

    def number(name: str) -> int | None:
        name = name.strip().lower()
        for names in (_WEEKDAYS, _WEEKDAY_NAMES):
            if name in names:
                return names.index(name)
        return None

    first, dash, last = key.partition("-")
    begin = number(first)
    end = number(last) if dash else begin
    if begin is None or end is None or end < begin:
        return None
    return list(range(begin, end + 1))


def _read_holidays(spec: Any, at: str, errors: list[FieldError]) -> tuple[str | None, str | None]:
    """``{country: NL}``, ``{country: US, subdivision: CA}`` or the shorthand ``NL``."""
    if spec is None:
        return None, None
    if isinstance(spec, str):
        spec = {"country": spec}
    if not isinstance(spec, dict):
        errors.append(FieldError(at, "a mapping such as {country: NL, subdivision: ...}"))
        return None, None
    for key in spec:
        if key not in _HOLIDAY_KEYS:
            errors.append(FieldError(f"{at}.{key}", "unknown key (use country, subdivision)"))
    country = spec.get("country")
    if country is None:
        errors.append(FieldError(f"{at}.country", "required: an ISO country code such as NL", "missing"))
        return None, None
    # The holidays package wants upper-case codes; ``nl`` is an easy slip to forgive.
    country = str(country).upper()
    subdivision = None if spec.get("subdivision") is None else str(spec["subdivision"])
    errors.extend(FieldError(f"{at}.{key}", message) for key, message in _holiday_problems(country, subdivision))
    return country, subdivision


def _read_closed(spec: Any, at: str, errors: list[FieldError]) -> frozenset[date]:
    if spec is None:
        return frozenset()
    if not isinstance(spec, list):
        errors.append(FieldError(at, "a list of dates such as [2026-12-24]"))
        return frozenset()
    closed = set()
    for index, value in enumerate(spec):
        # Dates arrive as text (see _DatesAsText) unless tagged !!timestamp. A datetime is a date too, but a closed
        # *day* with a time of day is a mistake worth reporting.
        if isinstance(value, date) and not isinstance(value, datetime):
            closed.add(value)
            continue
        try:
            closed.add(date.fromisoformat(str(value)))
        except ValueError:
            errors.append(FieldError(f"{at}[{index}]", f"{value!r} is not a date such as 2026-12-24"))
    return frozenset(closed)
