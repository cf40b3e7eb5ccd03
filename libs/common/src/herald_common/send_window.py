"""When a message may be sent: a mailing's frame intersected with a client-local window.

The scheduler computes ``due_at`` with :func:`first_due_at` once per time zone (never
per client), and senders check :func:`is_inside` before every request. Both work on
instants and the zone's real offsets, so DST gaps, repeated hours and windows that
wrap midnight need no special cases.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

_DAY = timedelta(days=1)
# No zone changes its offset twice within this span, so one probe per span finds
# every transition.
_PROBE_SPAN = timedelta(hours=20)
_RESOLUTION = timedelta(microseconds=1)


@dataclass(frozen=True)
class SendWindow:
    """A client-local wall-clock window [start, end); start > end wraps midnight."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("a send window's start and end must differ")

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def is_inside(instant: datetime, timezone: ZoneInfo, window: SendWindow | None) -> bool:
    if window is None:
        return True
    return window.contains(instant.astimezone(timezone).time())


def first_due_at(
    start: datetime, end: datetime, timezone: ZoneInfo, window: SendWindow | None
) -> datetime | None:
    """The earliest instant in [start, end) whose local time is inside the window.

    None when the frame holds no such instant. Walks spans of constant UTC offset:
    inside one, local time grows with the instant, so the answer is either the
    span's first instant or the instant the local clock reads the window's start.
    """
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if start >= end:
        return None
    if window is None:
        return start
    span_start = start
    while span_start < end:
        span_end = min(_next_transition(span_start, timezone), end)
        local = _local_naive(span_start, timezone)
        if window.contains(local.time()):
            return span_start
        to_opening = _time_until(local.time(), window.start)
        candidate = span_start + to_opening
        if candidate < span_end:
            return candidate
        span_start = span_end
    return None


def _local_naive(instant: datetime, timezone: ZoneInfo) -> datetime:
    return instant.astimezone(timezone).replace(tzinfo=None)


def _offset(instant: datetime, timezone: ZoneInfo) -> timedelta | None:
    return instant.astimezone(timezone).utcoffset()


def _time_until(now: time, then: time) -> timedelta:
    """How long a clock reading ``now`` takes to read ``then`` (strictly ahead or zero)."""
    anchor = datetime(2000, 1, 1)
    delta = datetime.combine(anchor, then) - datetime.combine(anchor, now)
    return delta if delta >= timedelta(0) else delta + _DAY


def _next_transition(after: datetime, timezone: ZoneInfo) -> datetime:
    """The first instant after ``after`` with another UTC offset, or ``after`` + one probe span."""
    offset = _offset(after, timezone)
    low, high = after, after + _PROBE_SPAN
    if _offset(high, timezone) == offset:
        return high
    while high - low > _RESOLUTION:
        middle = low + (high - low) / 2
        if _offset(middle, timezone) == offset:
            low = middle
        else:
            high = middle
    return high
