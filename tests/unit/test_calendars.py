"""Business calendars: worked examples (weekends, lunch breaks, public holidays, daylight saving) and properties.

Dates used: 2026-01-09 and 2026-04-24 are Fridays; King's Day is Monday 2026-04-27; Independence Day is observed on
Friday 2026-07-03. Europe/Amsterdam springs forward on Sunday 2026-03-29 (02:00 -> 03:00) and falls back on Sunday
2026-10-25 (03:00 -> 02:00); America/New_York on Sunday 2026-03-08 and Sunday 2026-11-01.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsrail.engine import BusinessCalendar, CalendarRegistry, load_calendars
from opsrail.model import InvalidInput, NotFound

AMS = ZoneInfo("Europe/Amsterdam")
NYC = ZoneInfo("America/New_York")
MICROSECOND = timedelta(microseconds=1)
HOUR = timedelta(hours=1)

REGISTRY = CalendarRegistry()
NINE_TO_FIVE = REGISTRY.get("business-hours")
ALWAYS = REGISTRY.get("24x7")
CLOSED: tuple[tuple[time, time | None], ...] = ()


def weekly(
    weekdays: tuple[tuple[time, time | None], ...], saturday: tuple[tuple[time, time | None], ...] = CLOSED
) -> tuple[tuple[tuple[time, time | None], ...], ...]:
    return (weekdays,) * 5 + (saturday, CLOSED)


def sundays_only(*intervals: tuple[time, time | None]) -> tuple[tuple[tuple[time, time | None], ...], ...]:
    return (CLOSED,) * 6 + (intervals,)


EMEA = BusinessCalendar(
    name="emea",
    timezone="Europe/Amsterdam",
    hours=weekly(((time(8), time(12)), (time(13), time(18))), saturday=((time(10), time(14)),)),
    holidays_country="NL",
    extra_closed_dates=frozenset({date(2026, 12, 24)}),
)
NY_SUPPORT = BusinessCalendar(
    name="ny", timezone="America/New_York", hours=weekly(((time(9), time(17)),)), holidays_country="US"
)
# Opening hours that straddle the Amsterdam spring-forward gap and run to midnight, every day.
NIGHT_SHIFT = BusinessCalendar(
    name="night", timezone="Europe/Amsterdam", hours=(((time(1), time(4)), (time(22), None)),) * 7
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calendars.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- worked examples: business hours -------------------------------------------------------------------------------


def test_friday_afternoon_plus_two_hours_is_monday_ten() -> None:
    friday_16 = datetime(2026, 1, 9, 16, tzinfo=UTC)
    monday_10 = datetime(2026, 1, 12, 10, tzinfo=UTC)
    assert NINE_TO_FIVE.add(friday_16, 2 * HOUR) == monday_10
    assert NINE_TO_FIVE.elapsed(friday_16, monday_10) == 2 * HOUR


def test_a_start_outside_hours_waits_for_the_next_opening() -> None:
    saturday_noon = datetime(2026, 1, 10, 12, tzinfo=UTC)
    assert not NINE_TO_FIVE.is_open(saturday_noon)
    assert NINE_TO_FIVE.next_open(saturday_noon) == datetime(2026, 1, 12, 9, tzinfo=UTC)
    assert NINE_TO_FIVE.add(saturday_noon, HOUR) == datetime(2026, 1, 12, 10, tzinfo=UTC)
    early_tuesday = datetime(2026, 1, 13, 6, tzinfo=UTC)
    assert NINE_TO_FIVE.add(early_tuesday, 30 * timedelta(minutes=1)) == datetime(2026, 1, 13, 9, 30, tzinfo=UTC)


def test_a_duration_that_fills_the_day_ends_at_closing_time_which_is_closed() -> None:
    friday_9 = datetime(2026, 1, 9, 9, tzinfo=UTC)
    friday_17 = datetime(2026, 1, 9, 17, tzinfo=UTC)
    assert NINE_TO_FIVE.add(friday_9, 8 * HOUR) == friday_17
    assert NINE_TO_FIVE.is_open(friday_9)
    assert not NINE_TO_FIVE.is_open(friday_17)
    assert NINE_TO_FIVE.next_open(friday_17) == datetime(2026, 1, 12, 9, tzinfo=UTC)
    assert NINE_TO_FIVE.next_open(friday_9) == friday_9
    assert NINE_TO_FIVE.add(friday_9, timedelta(0)) == friday_9


def test_thirty_days_of_business_time_is_eighteen_working_weeks() -> None:
    # 720 hours at 40 a week; walked a day at a time, so this is quick.
    monday_9 = datetime(2026, 1, 5, 9, tzinfo=UTC)
    deadline = NINE_TO_FIVE.add(monday_9, timedelta(days=30))
    assert deadline == datetime(2026, 5, 8, 17, tzinfo=UTC)
    assert NINE_TO_FIVE.elapsed(monday_9, deadline) == timedelta(days=30)


def test_a_lunch_break_stops_the_clock() -> None:
    tuesday = date(2026, 1, 13)

    def local(hour: int, minute: int = 0) -> datetime:
        return datetime.combine(tuesday, time(hour, minute), AMS)

    assert EMEA.add(local(11, 30), HOUR) == local(13, 30).astimezone(UTC)
    assert not EMEA.is_open(local(12, 30))
    assert EMEA.is_open(local(13))
    assert EMEA.elapsed(local(11), local(14)) == 2 * HOUR
    assert EMEA.next_open(local(12, 15)) == local(13).astimezone(UTC)


def test_results_are_utc_whatever_the_input_zone() -> None:
    start = datetime(2026, 1, 13, 9, tzinfo=AMS)
    for result in (EMEA.add(start, HOUR), EMEA.next_open(start), ALWAYS.add(start, HOUR)):
        assert result.tzinfo is UTC


# --- worked examples: holidays and closed dates --------------------------------------------------------------------


def test_kings_day_is_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'calendars:\n  nl-office:\n    timezone: Europe/Amsterdam\n    hours: {mon-fri: "08:00-18:00"}\n'
        "    holidays: {country: NL}\n",
    )
    office = load_calendars(path)["nl-office"]
    friday_17 = datetime(2026, 4, 24, 17, tzinfo=AMS)
    assert not office.is_open(datetime(2026, 4, 27, 10, tzinfo=AMS))
    assert office.add(friday_17, 2 * HOUR) == datetime(2026, 4, 28, 9, tzinfo=AMS)
    assert office.elapsed(datetime(2026, 4, 27, tzinfo=AMS), datetime(2026, 4, 28, tzinfo=AMS)) == timedelta(0)


def test_an_observed_us_holiday_is_skipped() -> None:
    thursday_16 = datetime(2026, 7, 2, 16, tzinfo=NYC)
    assert not NY_SUPPORT.is_open(datetime(2026, 7, 3, 12, tzinfo=NYC))
    assert NY_SUPPORT.add(thursday_16, 2 * HOUR) == datetime(2026, 7, 6, 10, tzinfo=NYC)


def test_extra_closed_dates_are_skipped() -> None:
    christmas_eve = datetime(2026, 12, 24, 10, tzinfo=AMS)
    assert not EMEA.is_open(christmas_eve)
    # 24 December is closed, 25 and 26 are public holidays, 27 is a Sunday.
    assert EMEA.next_open(christmas_eve) == datetime(2026, 12, 28, 8, tzinfo=AMS)


# --- worked examples: daylight saving ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "sunday", "hours"),
    [
        (AMS, date(2026, 3, 29), 23),
        (AMS, date(2026, 10, 25), 25),
        (NYC, date(2026, 3, 8), 23),
        (NYC, date(2026, 11, 1), 25),
        (AMS, date(2026, 6, 7), 24),
    ],
)
def test_a_whole_day_lasts_as_long_as_it_really_does(zone: ZoneInfo, sunday: date, hours: int) -> None:
    calendar = BusinessCalendar(name="sundays", timezone=str(zone), hours=sundays_only((time(0), None)))
    midnight = datetime.combine(sunday, time(0), zone)
    next_midnight = datetime.combine(sunday + timedelta(days=1), time(0), zone)
    assert calendar.elapsed(midnight, next_midnight) == timedelta(hours=hours)
    assert calendar.add(midnight, timedelta(hours=hours)) == next_midnight.astimezone(UTC)


def test_business_hours_keep_local_wall_clock_across_dst() -> None:
    # New York: Friday 16:00 EST + 2 h is Monday 10:00 EDT, which is 14:00 UTC rather than 15:00.
    assert NY_SUPPORT.add(datetime(2026, 3, 6, 16, tzinfo=NYC), 2 * HOUR) == datetime(2026, 3, 9, 14, tzinfo=UTC)
    # Amsterdam, spring and autumn: Friday 17:00 + 2 h is Monday 10:00 local (one hour Friday, one Monday).
    office = BusinessCalendar(name="office", timezone="Europe/Amsterdam", hours=weekly(((time(9), time(18)),)))
    assert office.add(datetime(2026, 3, 27, 17, tzinfo=AMS), 2 * HOUR) == datetime(2026, 3, 30, 8, tzinfo=UTC)
    assert office.add(datetime(2026, 10, 23, 17, tzinfo=AMS), 2 * HOUR) == datetime(2026, 10, 26, 9, tzinfo=UTC)


def test_hours_across_the_spring_gap_lose_an_hour_and_across_the_autumn_overlap_gain_one() -> None:
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)
    for day, expected in ((spring, 2), (autumn, 4)):
        one = datetime.combine(day, time(1), AMS)
        assert NIGHT_SHIFT.elapsed(one, datetime.combine(day, time(4), AMS)) == timedelta(hours=expected)
    # 01:00 CET (00:00 UTC) + 90 minutes: an hour until the gap, then half an hour from 03:00 CEST.
    assert NIGHT_SHIFT.add(datetime.combine(spring, time(1), AMS), timedelta(minutes=90)) == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC
    )
    assert NIGHT_SHIFT.is_open(datetime(2026, 3, 29, 1, 30, tzinfo=UTC))


def test_an_interval_inside_the_gap_does_not_happen_and_inside_the_overlap_happens_twice() -> None:
    calendar = BusinessCalendar(name="gap", timezone="Europe/Amsterdam", hours=sundays_only((time(2), time(2, 30))))
    saturday = datetime(2026, 3, 28, 12, tzinfo=AMS)
    assert calendar.elapsed(saturday, saturday + timedelta(days=2)) == timedelta(0)
    assert calendar.next_open(saturday) == datetime(2026, 4, 5, 2, tzinfo=AMS)
    autumn_saturday = datetime(2026, 10, 24, 12, tzinfo=AMS)
    assert calendar.elapsed(autumn_saturday, autumn_saturday + timedelta(days=2)) == HOUR
    # 02:15 local happens at 00:15 UTC (summer time) and again at 01:15 UTC (winter time).
    assert calendar.is_open(datetime(2026, 10, 25, 0, 15, tzinfo=UTC))
    assert calendar.is_open(datetime(2026, 10, 25, 1, 15, tzinfo=UTC))
    assert not calendar.is_open(datetime(2026, 10, 25, 0, 45, tzinfo=UTC))  # 02:45 CEST
    assert calendar.add(autumn_saturday, timedelta(minutes=45)) == datetime(2026, 10, 25, 1, 15, tzinfo=UTC)


# --- worked examples: always open ----------------------------------------------------------------------------------


def test_always_open_is_plain_arithmetic_in_utc() -> None:
    # Aware arithmetic in Amsterdam would be wall-clock arithmetic and lose the skipped hour; the calendar does not.
    before_the_gap = datetime(2026, 3, 29, 1, tzinfo=AMS)
    assert ALWAYS.add(before_the_gap, 2 * HOUR) == datetime(2026, 3, 29, 2, tzinfo=UTC)
    day = (datetime(2026, 3, 29, tzinfo=AMS), datetime(2026, 3, 30, tzinfo=AMS))
    assert ALWAYS.elapsed(*day) == timedelta(hours=23)
    assert REGISTRY.get("support-24x7").add(before_the_gap, timedelta(days=3)) == datetime(2026, 4, 1, tzinfo=UTC)
    assert ALWAYS.is_open(before_the_gap)
    assert ALWAYS.next_open(before_the_gap) == before_the_gap


# --- refusals ------------------------------------------------------------------------------------------------------


def test_naive_times_and_negative_durations_are_refused() -> None:
    naive = datetime(2026, 1, 9, 10)
    aware = naive.replace(tzinfo=UTC)
    for calendar in (NINE_TO_FIVE, ALWAYS):
        with pytest.raises(ValueError, match="timezone-aware"):
            calendar.is_open(naive)
        with pytest.raises(ValueError, match="timezone-aware"):
            calendar.next_open(naive)
        with pytest.raises(ValueError, match="timezone-aware"):
            calendar.add(naive, HOUR)
        with pytest.raises(ValueError, match="timezone-aware"):
            calendar.elapsed(aware, naive)
        with pytest.raises(ValueError, match="negative"):
            calendar.add(aware, -HOUR)
        assert calendar.elapsed(aware, aware - HOUR) == timedelta(0)


def test_a_calendar_that_never_opens_cannot_reach_a_deadline() -> None:
    never = BusinessCalendar(name="never", timezone="UTC")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="no opening hours"):
        never.add(start, HOUR)
    with pytest.raises(ValueError, match="no opening hours"):
        never.next_open(start)
    assert never.elapsed(start, start + timedelta(days=30)) == timedelta(0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"hours": sundays_only((time(18), time(8)))}, "ends before it starts"),
        ({"hours": sundays_only((time(8), time(12)), (time(11), time(13)))}, "overlaps"),
        ({"hours": ((),) * 6}, "7 days"),
        ({"holidays_country": "XX"}, "no public holidays"),
        ({"holidays_country": "NL", "holidays_subdivision": "ZZ"}, "no subdivision"),
        ({"holidays_subdivision": "CA"}, "needs a holidays country"),
    ],
)
def test_an_invalid_calendar_cannot_be_built(changes: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"name": "bad", "timezone": "UTC", **changes}
    with pytest.raises(ValueError, match=message):
        BusinessCalendar(**arguments)  # type: ignore[arg-type]


def test_an_end_of_midnight_is_the_end_of_the_day() -> None:
    by_none = BusinessCalendar(name="late", hours=sundays_only((time(20), None)))
    by_midnight = BusinessCalendar(name="late", hours=sundays_only((time(20), time(0))))
    assert by_none == by_midnight


# --- loading -------------------------------------------------------------------------------------------------------


def test_the_documented_example_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
calendars:
  emea-support:
    timezone: Europe/Amsterdam
    hours: {mon-fri: "08:00-12:00, 13:00-18:00", sat: "10:00-14:00"}
    holidays: {country: NL}
    closed: [2026-12-24]
  us-west:
    timezone: America/Los_Angeles
    hours:
      monday-friday: ["07:00-11:00", "12:00-24:00"]
      sun: closed
    holidays: {country: us, subdivision: CA}
    closed: ["2026-11-27"]
""",
    )
    calendars = load_calendars(path)
    assert calendars["emea-support"] == BusinessCalendar(
        name="emea-support",
        timezone="Europe/Amsterdam",
        hours=EMEA.hours,
        holidays_country="NL",
        extra_closed_dates=frozenset({date(2026, 12, 24)}),
    )
    west = calendars["us-west"]
    assert west.hours[0] == ((time(7), time(11)), (time(12), None))
    assert west.hours[5:] == ((), ())
    assert (west.holidays_country, west.holidays_subdivision) == ("US", "CA")
    assert west.extra_closed_dates == {date(2026, 11, 27)}
    registry = CalendarRegistry(calendars)
    assert registry.get("emea-support") is calendars["emea-support"]
    assert {"24x7", "support-24x7", "business-hours", "emea-support", "us-west"} == set(registry.names())


def test_every_problem_in_a_calendars_file_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
calendars:
  broken:
    timezone: Mars/Olympus
    hours: {mon-fri: "18:00-08:00", funday: "09:00-10:00", sat: "09:00-12:00, 11:00-13:00", sun: "nine to five"}
    holidays: {country: XX}
    closed: [2026-02-30, tomorrow]
  sloppy:
    hours: {mon: "09:00-17:00"}
    holidays: {country: NL, subdivision: ZZ, observed: true}
    timzone: UTC
  not-a-mapping: 24x7
""",
    )
    with pytest.raises(InvalidInput) as info:
        load_calendars(path)
    found = {(error.path, error.code) for error in info.value.errors}
    assert found == {
        ("$.calendars.broken.timezone", "invalid"),
        ("$.calendars.broken.hours.mon-fri", "invalid"),
        ("$.calendars.broken.hours.funday", "invalid"),
        ("$.calendars.broken.hours.sun", "invalid"),
        ("$.calendars.broken.hours", "invalid"),  # saturday's intervals overlap
        ("$.calendars.broken.holidays.country", "invalid"),
        ("$.calendars.broken.closed[0]", "invalid"),
        ("$.calendars.broken.closed[1]", "invalid"),
        ("$.calendars.sloppy.timezone", "missing"),
        ("$.calendars.sloppy.timzone", "invalid"),
        ("$.calendars.sloppy.holidays.subdivision", "invalid"),
        ("$.calendars.sloppy.holidays.observed", "invalid"),
        ("$.calendars.not-a-mapping", "invalid"),
    }
    messages = " | ".join(error.message for error in info.value.errors)
    for fragment in ("Mars/Olympus", "'18:00-08:00'", "unknown weekday", "sat: 09:00-12:00 overlaps 11:00-13:00", "XX"):
        assert fragment in messages


@pytest.mark.parametrize("text", ["", "calendars: [a, b]\n", "calendars: {a: [\n"])
def test_a_file_without_a_calendars_mapping_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(InvalidInput):
        load_calendars(write(tmp_path, text))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        load_calendars(tmp_path / "absent.yaml")


def test_the_registry_names_the_known_calendars_when_one_is_missing() -> None:
    with pytest.raises(NotFound) as info:
        REGISTRY.get("emea")
    assert info.value.hint is not None
    assert "24x7, business-hours, support-24x7" in info.value.hint
    assert "business-hours" in REGISTRY
    replaced = CalendarRegistry({"business-hours": EMEA})
    assert replaced.get("business-hours") is EMEA


# --- properties ----------------------------------------------------------------------------------------------------

calendars = st.sampled_from([NINE_TO_FIVE, EMEA, NY_SUPPORT, NIGHT_SHIFT, ALWAYS])
zones = st.sampled_from([UTC, AMS, NYC, ZoneInfo("Asia/Kolkata")])
# Around both 2026 transitions and a year boundary; hypothesis also draws wall-clock times that do not exist or
# happen twice in the chosen zone, which the calendar must read as the instants they denote.
moments = st.datetimes(min_value=datetime(2025, 12, 1), max_value=datetime(2027, 1, 31), timezones=zones)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20))
PROPERTY = settings(max_examples=200, deadline=None)


@PROPERTY
@given(calendars, moments, durations)
def test_elapsed_undoes_add(calendar: BusinessCalendar, start: datetime, duration: timedelta) -> None:
    assert calendar.elapsed(start, calendar.add(start, duration)) == duration


@PROPERTY
@given(calendars, moments, durations, durations)
def test_add_is_monotonic_and_composes(
    calendar: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
) -> None:
    shorter, longer = sorted((first, second))
    assert start <= calendar.add(start, shorter) <= calendar.add(start, longer)
    assert calendar.add(calendar.add(start, first), second) == calendar.add(start, first + second)


@PROPERTY
@given(calendars, moments, durations.filter(lambda duration: duration > timedelta(0)))
def test_the_clock_runs_right_up_to_a_deadline(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    # A deadline is the earliest instant the duration is used up, so business time was passing just before it.
    deadline = calendar.add(start, duration)
    assert calendar.is_open(deadline - MICROSECOND)
    assert calendar.elapsed(start, deadline - MICROSECOND) == duration - MICROSECOND


@PROPERTY
@given(calendars, moments, moments, moments)
def test_elapsed_is_additive_and_bounded_by_wall_time(
    calendar: BusinessCalendar, a: datetime, b: datetime, c: datetime
) -> None:
    # In UTC: aware datetimes sharing a zone compare and subtract by wall clock, which the autumn overlap fools.
    first, middle, last = sorted(moment.astimezone(UTC) for moment in (a, b, c))
    whole = calendar.elapsed(first, last)
    assert calendar.elapsed(first, middle) + calendar.elapsed(middle, last) == whole
    assert timedelta(0) <= whole <= last - first


@PROPERTY
@given(calendars, moments)
def test_is_open_agrees_with_elapsed_and_next_open(calendar: BusinessCalendar, at: datetime) -> None:
    # is_open reads the wall clock; elapsed and next_open walk the UTC stretches. They must describe the same set.
    at = at.astimezone(UTC)
    assert calendar.elapsed(at, at + MICROSECOND) == (MICROSECOND if calendar.is_open(at) else timedelta(0))
    opening = calendar.next_open(at)
    assert opening >= at
    assert calendar.is_open(opening)
    assert calendar.elapsed(at, opening) == timedelta(0)
    assert (opening == at) == calendar.is_open(at)
