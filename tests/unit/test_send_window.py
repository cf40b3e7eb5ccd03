"""first_due_at and is_inside: frames, windows that wrap midnight, DST gaps and repeats."""

from datetime import UTC, datetime, time, timedelta

import pytest

from herald_common.send_window import SendWindow, first_due_at, is_inside, zone

BERLIN = zone("Europe/Berlin")
NINE_TO_NINE = SendWindow(time(9), time(21))
NIGHT = SendWindow(time(21), time(9))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_without_window_due_at_is_start() -> None:
    assert first_due_at(utc(2026, 1, 1, 3), utc(2026, 1, 2), BERLIN, None) == utc(2026, 1, 1, 3)


def test_start_inside_window_is_due_at_once() -> None:
    assert first_due_at(utc(2026, 1, 1, 10), utc(2026, 1, 2), BERLIN, NINE_TO_NINE) == utc(
        2026, 1, 1, 10
    )


def test_start_before_window_waits_for_local_opening() -> None:
    # 05:00 UTC is 06:00 in Berlin in winter; 09:00 local is 08:00 UTC.
    due = first_due_at(utc(2026, 1, 1, 5), utc(2026, 1, 2), BERLIN, NINE_TO_NINE)
    assert due == utc(2026, 1, 1, 8)


def test_start_after_window_waits_for_next_day() -> None:
    due = first_due_at(utc(2026, 1, 1, 21), utc(2026, 1, 3), BERLIN, NINE_TO_NINE)
    assert due == utc(2026, 1, 2, 8)


def test_window_wrapping_midnight() -> None:
    assert first_due_at(utc(2026, 1, 1, 23), utc(2026, 1, 2), BERLIN, NIGHT) == utc(2026, 1, 1, 23)
    assert first_due_at(utc(2026, 1, 1, 12), utc(2026, 1, 2), BERLIN, NIGHT) == utc(2026, 1, 1, 20)


def test_no_opening_inside_frame_is_none() -> None:
    assert first_due_at(utc(2026, 1, 1, 21), utc(2026, 1, 2, 7), BERLIN, NINE_TO_NINE) is None


def test_empty_frame_is_none() -> None:
    assert first_due_at(utc(2026, 1, 1), utc(2026, 1, 1), BERLIN, None) is None


def test_opening_inside_dst_gap_is_end_of_gap() -> None:
    # 2021-03-28: Berlin jumps from 02:00 CET to 03:00 CEST at 01:00 UTC.
    window = SendWindow(time(2, 30), time(4))
    due = first_due_at(utc(2021, 3, 27, 12), utc(2021, 3, 30), BERLIN, window)
    assert due == utc(2021, 3, 28, 1)


def test_repeated_hour_opens_at_first_occurrence() -> None:
    # 2021-10-31: 02:00-03:00 happens twice in Berlin (CEST, then CET).
    window = SendWindow(time(2, 15), time(2, 45))
    due = first_due_at(utc(2021, 10, 30, 12), utc(2021, 11, 1), BERLIN, window)
    assert due == utc(2021, 10, 31, 0, 15)


def test_is_inside_uses_client_local_time() -> None:
    assert is_inside(utc(2026, 1, 1, 8), BERLIN, NINE_TO_NINE)
    assert not is_inside(utc(2026, 1, 1, 7, 59), BERLIN, NINE_TO_NINE)
    assert is_inside(utc(2026, 1, 1, 7), zone("Asia/Tokyo"), NIGHT) is False
    assert is_inside(utc(2026, 1, 1, 1), BERLIN, None)


def test_window_start_equal_end_is_rejected() -> None:
    with pytest.raises(ValueError, match="differ"):
        SendWindow(time(9), time(9))


@pytest.mark.parametrize("hours", [1, 5, 13, 23])
def test_due_at_lies_inside_frame_and_window(hours: int) -> None:
    start = utc(2026, 6, 1, hours)
    end = start + timedelta(days=2)
    due = first_due_at(start, end, zone("America/New_York"), NINE_TO_NINE)
    assert due is not None
    assert start <= due < end
    assert is_inside(due, zone("America/New_York"), NINE_TO_NINE)
