from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsrail.engine._calendars import BUILT_IN, BusinessCalendar, CalendarRegistry, load_calendars
from opsrail.model import InvalidInput, NotFound

AMS = ZoneInfo("Europe/Amsterdam")
NINE_TO_FIVE = BUILT_IN["business-hours"]


def test_a_friday_afternoon_target_lands_on_monday() -> None:
    friday_16 = datetime(2026, 1, 9, 16, 0, tzinfo=UTC)
    assert NINE_TO_FIVE.add(friday_16, timedelta(hours=2)) == datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
    saturday = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    assert NINE_TO_FIVE.add(saturday, timedelta(hours=1)) == datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
    assert NINE_TO_FIVE.elapsed(friday_16, datetime(2026, 1, 12, 10, 0, tzinfo=UTC)) == timedelta(hours=2)
    assert not NINE_TO_FIVE.is_open(saturday)


def test_public_holidays_and_closed_days_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "calendars.yaml"
    path.write_text(
        "calendars:\n  emea-support:\n    timezone: Europe/Amsterdam\n"
        '    hours: {mon-fri: "08:00-12:00, 13:00-18:00", sat: "10:00-14:00"}\n'
        "    holidays: {country: NL}\n    closed: [2026-04-28]\n"
    )
    emea = load_calendars(path)["emea-support"]
    # Friday 24 April 17:00 local; King's Day (Monday 27 April) and the closed Tuesday are skipped.
    start = datetime(2026, 4, 24, 17, 0, tzinfo=AMS)
    deadline = emea.add(start, timedelta(hours=6))
    # 1 h on Friday, 4 h on Saturday, then Wednesday 08:00 + 1 h.
    assert deadline == datetime(2026, 4, 29, 9, 0, tzinfo=AMS)
    assert emea.elapsed(start, deadline) == timedelta(hours=6)
    assert not emea.is_open(datetime(2026, 4, 29, 12, 30, tzinfo=AMS))  # lunch


def test_daylight_saving_days_keep_local_hours() -> None:
    calendar = BusinessCalendar(name="ams", timezone="Europe/Amsterdam", hours=(((datetime.min.time(), None),),) * 7)
    # 29 March 2026 has 23 hours in Amsterdam; 25 October has 25.
    spring = datetime(2026, 3, 29, 0, 0, tzinfo=AMS)
    assert calendar.elapsed(spring, spring + timedelta(days=1)) == timedelta(hours=23)
    autumn = datetime(2026, 10, 25, 0, 0, tzinfo=AMS)
    assert calendar.elapsed(autumn, datetime(2026, 10, 26, 0, 0, tzinfo=AMS)) == timedelta(hours=25)


def test_always_open_is_plain_arithmetic_and_naive_times_are_refused() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert BUILT_IN["24x7"].add(start, timedelta(days=3)) == start + timedelta(days=3)
    with pytest.raises(ValueError, match="timezone-aware"):
        BUILT_IN["24x7"].add(datetime(2026, 1, 1), timedelta(hours=1))


def test_bad_calendars_report_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "calendars.yaml"
    path.write_text(
        "calendars:\n  broken:\n    timezone: Mars/Olympus\n"
        '    hours: {mon-fri: "18:00-08:00", funday: "09:00-10:00"}\n    holidays: {country: XX}\n'
    )
    with pytest.raises(InvalidInput) as info:
        load_calendars(path)
    paths = {e.path for e in info.value.errors}
    assert paths == {
        "$.calendars.broken.timezone",
        "$.calendars.broken.hours.mon-fri",
        "$.calendars.broken.hours.funday",
        "$.calendars.broken.holidays.country",
    }
    with pytest.raises(NotFound, match="business-hours"):
        CalendarRegistry().get("nope")


moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC))
spans = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20))


@given(moments, spans)
@settings(max_examples=150, deadline=None)
def test_elapsed_undoes_add(start: datetime, duration: timedelta) -> None:
    assert NINE_TO_FIVE.elapsed(start, NINE_TO_FIVE.add(start, duration)) == duration


@given(moments, spans, spans)
@settings(max_examples=150, deadline=None)
def test_add_is_monotonic_and_elapsed_is_additive(start: datetime, a: timedelta, b: timedelta) -> None:
    first, second = sorted((a, b))
    one, two = NINE_TO_FIVE.add(start, first), NINE_TO_FIVE.add(start, second)
    assert one <= two
    assert NINE_TO_FIVE.elapsed(start, one) + NINE_TO_FIVE.elapsed(one, two) == NINE_TO_FIVE.elapsed(start, two)
