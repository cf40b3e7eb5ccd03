"""When reports are due: a report's day in its time zone, and which days a reporter owes.

Pure functions of the clock; the service asks them what to send and how long to sleep.
A day runs from local midnight to the next local midnight, so around a DST change it
lasts 23 or 25 hours. A wall-clock time that does not exist (inside a spring-forward gap)
resolves as zoneinfo resolves ``fold=0``: the instant it would be with the offset in
force before the gap, which lands just after the gap. A midnight in a gap (some zones
change at 00:00) thus starts the day at the first instant that exists.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class ReportDay:
    """One local calendar day and the instants that bound it: ``start <= t < end``."""

    day: date
    zone: ZoneInfo
    start: datetime
    end: datetime

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time on a day."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def report_day(day: date, zone: ZoneInfo) -> ReportDay:
    return ReportDay(
        day=day,
        zone=zone,
        start=local_instant(day, time(0), zone),
        end=local_instant(day + timedelta(days=1), time(0), zone),
    )


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    return instant.astimezone(zone).date()


def report_at(day: date, zone: ZoneInfo, at: time) -> datetime:
    """When the report for ``day`` is due: ``at`` on the following local day."""
    return local_instant(day + timedelta(days=1), at, zone)


def is_over(day: date, zone: ZoneInfo, now: datetime) -> bool:
    return now >= report_day(day, zone).end


@dataclass(frozen=True)
class DueDays:
    """The days whose report is due now, oldest first; ``skipped_before``: the catch-up
    window's first day, when days from ``first_day`` up to it fell out of the window."""

    due: list[date]
    skipped_before: date | None


def due_days(
    now: datetime, zone: ZoneInfo, at: time, *, first_day: date, catch_up_days: int
) -> DueDays:
    """Days from ``first_day`` on whose report time has come, at most ``catch_up_days`` back.

    ``first_day`` is the local day the reporter first started: days before it are never
    due, so a new deployment does not mail a backlog of history. Whether a due day was
    sent already is the claims' business, not this function's.
    """
    today = local_date(now, zone)
    # The most recent day that may be due is yesterday, once today's report time passed.
    latest = today - timedelta(days=1)
    if now < report_at(latest, zone, at):
        latest -= timedelta(days=1)
    window_start = latest - timedelta(days=catch_up_days - 1)
    oldest = max(first_day, window_start)
    due = [oldest + timedelta(days=n) for n in range((latest - oldest).days + 1)]
    return DueDays(due=due, skipped_before=window_start if first_day < window_start else None)


def next_report_at(now: datetime, zone: ZoneInfo, at: time) -> datetime:
    """The first report time strictly after ``now``."""
    today = local_date(now, zone)
    for offset in (-1, 0, 1):
        due = report_at(today + timedelta(days=offset), zone, at)
        if due > now:
            return due
    raise AssertionError("a report time falls within every two days")  # pragma: no cover
