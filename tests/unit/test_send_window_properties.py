"""Property tests of first_due_at over any IANA zone, any window (wrapping midnight or
not) and frames that cross DST changes: the answer lies inside both the frame and the
window and is the earliest such instant; None only when no such instant exists."""

from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import available_timezones

from hypothesis import given, settings
from hypothesis import strategies as st

from herald_common.send_window import SendWindow, first_due_at, is_inside, zone

ZONES = sorted(available_timezones())
# Windows are whole minutes and post-1970 offsets change on minute boundaries, so every
# stretch of instants inside a window is at least this long and a scan at this step
# cannot step over one.
SCAN_STEP = timedelta(seconds=30)


@st.composite
def windows(draw: st.DrawFn) -> SendWindow:
    start = draw(st.times().map(lambda t: t.replace(second=0, microsecond=0)))
    end = draw(st.times().map(lambda t: t.replace(second=0, microsecond=0)))
    if start == end:
        end = (datetime.combine(datetime(2000, 1, 1), start) + timedelta(minutes=1)).time()
    return SendWindow(start, end)


def transitions(tz_name: str, year: int) -> list[datetime]:
    """The days of ``year`` on which the zone's UTC offset changes (to the day)."""
    tz = zone(tz_name)
    days = [datetime(year, 1, 1, tzinfo=UTC) + timedelta(days=n) for n in range(366)]
    return [
        later
        for earlier, later in pairwise(days)
        if earlier.astimezone(tz).utcoffset() != later.astimezone(tz).utcoffset()
    ]


@st.composite
def zone_and_start(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone, and a start that often lies within two days before one of its offset changes."""
    tz_name = draw(st.sampled_from(ZONES))
    year = draw(st.integers(1990, 2037))
    changes = transitions(tz_name, year)
    near_a_change = draw(st.booleans())
    if changes and near_a_change:
        change = draw(st.sampled_from(changes))
        return tz_name, change - draw(st.timedeltas(timedelta(0), timedelta(days=2)))
    naive = draw(st.datetimes(min_value=datetime(year, 1, 1), max_value=datetime(year, 12, 31)))
    return tz_name, naive.replace(tzinfo=UTC)


frames = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3))


def scan(start: datetime, stop: datetime) -> list[datetime]:
    points = []
    moment = start
    while moment < stop:
        points.append(moment)
        moment += SCAN_STEP
    return points


@settings(max_examples=300, deadline=None)
@given(
    zoned_start=zone_and_start(),
    window=st.one_of(st.none(), windows()),
    length=frames,
)
def test_due_at_is_the_earliest_instant_in_frame_and_window(
    zoned_start: tuple[str, datetime], window: SendWindow | None, length: timedelta
) -> None:
    tz_name, start = zoned_start
    tz = zone(tz_name)
    end = start + length
    due = first_due_at(start, end, tz, window)

    if due is None:
        assert not any(is_inside(t, tz, window) for t in scan(start, end))
        return
    assert start <= due < end
    assert is_inside(due, tz, window)
    # Earliest: nothing before it inside the frame is inside the window.
    just_before = due - timedelta(microseconds=1)
    assert just_before < start or not is_inside(just_before, tz, window)
    assert not any(is_inside(t, tz, window) for t in scan(start, due))


@settings(max_examples=200, deadline=None)
@given(window=windows(), local=st.times())
def test_window_contains_matches_its_definition(window: SendWindow, local: time) -> None:
    if window.start < window.end:
        expected = window.start <= local < window.end
    else:
        expected = not (window.end <= local < window.start)
    assert window.contains(local) is expected
