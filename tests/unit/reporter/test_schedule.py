"""Report days and due times: local midnights across DST changes, catch-up, the next wake-up."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from herald_reporter.schedule import due_days, is_over, next_report_at, report_at, report_day

BERLIN = ZoneInfo("Europe/Berlin")
EIGHT = time(8, 0)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_an_ordinary_day_runs_from_local_midnight_to_local_midnight() -> None:
    day = report_day(date(2025, 6, 11), BERLIN)
    assert (day.start, day.end) == (utc(2025, 6, 10, 22), utc(2025, 6, 11, 22))
    assert day.hours == 24


def test_spring_forward_gives_a_23_hour_day() -> None:
    day = report_day(date(2025, 3, 30), BERLIN)
    assert (day.start, day.end) == (utc(2025, 3, 29, 23), utc(2025, 3, 30, 22))
    assert day.hours == 23


def test_fall_back_gives_a_25_hour_day() -> None:
    day = report_day(date(2025, 10, 26), BERLIN)
    assert (day.start, day.end) == (utc(2025, 10, 25, 22), utc(2025, 10, 26, 23))
    assert day.hours == 25


@pytest.mark.parametrize(
    "zone",
    [
        "Europe/Berlin",
        "America/Santiago",  # changes at midnight: a day starts in a gap
        "America/Havana",  # also at midnight
        "Australia/Lord_Howe",  # half-hour DST
        "Asia/Kathmandu",
        "UTC",
    ],
)
def test_days_of_a_year_tile_time_without_gaps_or_overlaps(zone: str) -> None:
    tz = ZoneInfo(zone)
    day = date(2025, 1, 1)
    while day.year == 2025:
        bounds = report_day(day, tz)
        following = report_day(day + timedelta(days=1), tz)
        assert bounds.end == following.start, (zone, day)
        assert bounds.hours in (23, 23.5, 24, 24.5, 25), (zone, day, bounds.hours)
        # Every instant of the day is on that local date, its first one included.
        assert bounds.start.astimezone(tz).date() == day
        assert (bounds.end - timedelta(microseconds=1)).astimezone(tz).date() == day
        day += timedelta(days=1)


def test_the_report_is_due_at_the_local_report_time_of_the_next_day() -> None:
    assert report_at(date(2025, 6, 11), BERLIN, EIGHT) == utc(2025, 6, 12, 6)
    # The morning after the spring change: 08:00 is already summer time.
    assert report_at(date(2025, 3, 30), BERLIN, EIGHT) == utc(2025, 3, 31, 6)
    assert report_at(date(2025, 3, 29), BERLIN, EIGHT) == utc(2025, 3, 30, 6)
    # 02:30 does not exist on 30 March: it falls just after the gap, never before it.
    assert report_at(date(2025, 3, 29), BERLIN, time(2, 30)) == utc(2025, 3, 30, 1, 30)


def test_due_days_start_at_the_first_start_and_end_yesterday_after_the_report_time() -> None:
    first = date(2025, 3, 1)
    before = due_days(utc(2025, 3, 5, 6, 59), BERLIN, EIGHT, first_day=first, catch_up_days=7)
    after = due_days(utc(2025, 3, 5, 7, 0), BERLIN, EIGHT, first_day=first, catch_up_days=7)

    assert before.due == [date(2025, 3, d) for d in (1, 2, 3)]
    assert after.due == [date(2025, 3, d) for d in (1, 2, 3, 4)]
    assert after.skipped_before is None


def test_a_first_start_today_owes_nothing() -> None:
    now = utc(2025, 3, 5, 12)
    assert due_days(now, BERLIN, EIGHT, first_day=date(2025, 3, 5), catch_up_days=7).due == []
    # Started yesterday: yesterday's report is due this morning.
    assert due_days(now, BERLIN, EIGHT, first_day=date(2025, 3, 4), catch_up_days=7).due == [
        date(2025, 3, 4)
    ]


def test_catch_up_is_bounded_and_says_where_it_stopped() -> None:
    due = due_days(utc(2025, 3, 5, 12), BERLIN, EIGHT, first_day=date(2025, 1, 1), catch_up_days=3)
    assert due.due == [date(2025, 3, 2), date(2025, 3, 3), date(2025, 3, 4)]
    assert due.skipped_before == date(2025, 3, 2)


def test_the_next_report_time_is_strictly_later() -> None:
    assert next_report_at(utc(2025, 3, 5, 6, 59), BERLIN, EIGHT) == utc(2025, 3, 5, 7)
    assert next_report_at(utc(2025, 3, 5, 7), BERLIN, EIGHT) == utc(2025, 3, 6, 7)
    # Across the spring change the gap between two report times is 23 hours.
    assert next_report_at(utc(2025, 3, 29, 7, 30), BERLIN, EIGHT) == utc(2025, 3, 30, 6)


def test_a_day_is_over_at_its_end() -> None:
    day = date(2025, 10, 26)
    assert not is_over(day, BERLIN, utc(2025, 10, 26, 22, 59, 59))
    assert is_over(day, BERLIN, utc(2025, 10, 26, 23))
