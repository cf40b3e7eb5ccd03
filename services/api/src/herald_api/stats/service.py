"""Statistics read models: counts by status per mailing, totals, one mailing in detail,
the progress of live mailings and sends per minute."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.errors import NotFound
from herald_api.mailings import repository as mailings_repository
from herald_api.pagination import next_cursor
from herald_api.stats import repository
from herald_api.stats.schemas import (
    ErrorClassCount,
    MailingCounts,
    MailingStats,
    StatsPage,
    StatusCounts,
    StatusTotals,
)
from herald_common.db.counters import messages_by_status
from herald_common.domain import UNSENT_STATUSES, MailingStatus, MessageStatus

MAX_CHART_HOURS = 24
_MINUTE = timedelta(minutes=1)


def _counts(row: Any) -> StatusCounts:
    return StatusCounts(**{status.value: getattr(row, status.value) for status in MessageStatus})


def not_found(mailing_id: int) -> NotFound:
    return NotFound(f"no mailing with id {mailing_id}")


async def totals(session: AsyncSession) -> StatusTotals:
    """Message counts by status over every mailing."""
    by_status = await messages_by_status(session)
    counts = StatusCounts(**{status.value: n for status, n in by_status.items()})
    return StatusTotals(**counts.model_dump(), total=counts.message_count())


async def mailings_by_status(session: AsyncSession) -> dict[MailingStatus, int]:
    """How many mailings are in each status, every status present."""
    found = dict(await repository.mailings_by_status(session))
    return {status: found.get(status.value, 0) for status in MailingStatus}


@dataclass(frozen=True)
class MailingProgress:
    """A mailing's frame and message counts: what a live counter shows."""

    mailing_id: int
    text: str
    status: MailingStatus
    start_at: datetime
    end_at: datetime
    counts: StatusCounts

    @property
    def total(self) -> int:
        return self.counts.message_count()

    @property
    def unsent(self) -> int:
        return sum(getattr(self.counts, status.value) for status in UNSENT_STATUSES)

    @property
    def done(self) -> int:
        """Messages in a final status."""
        return self.total - self.unsent

    @property
    def is_final(self) -> bool:
        """True once the counts can no longer move: the mailing can send no more, and the
        scheduler has settled every message (expired or cancelled what was unsent)."""
        return self.status in (MailingStatus.finished, MailingStatus.cancelled) and not self.unsent

    @classmethod
    def of(cls, row: Any) -> "MailingProgress":
        return cls(
            mailing_id=row.id,
            text=row.text,
            status=MailingStatus(row.status),
            start_at=row.start_at,
            end_at=row.end_at,
            counts=_counts(row),
        )


async def progress(session: AsyncSession, mailing_id: int) -> MailingProgress:
    row = await repository.mailing_progress(session, mailing_id)
    if row is None:
        raise not_found(mailing_id)
    return MailingProgress.of(row)


async def active_progress(session: AsyncSession, limit: int) -> list[MailingProgress]:
    """Running mailings, then upcoming ones, by start, at most ``limit``."""
    return [MailingProgress.of(row) for row in await repository.active_progress(session, limit)]


@dataclass(frozen=True)
class SendsPerMinute:
    """Messages sent in each minute from ``since`` (inclusive) to ``until`` (exclusive)."""

    since: datetime
    until: datetime
    minutes: list[datetime]
    counts: list[int]


def minute_buckets(
    sends: Iterable[tuple[datetime, int]], *, since: datetime, minutes: int
) -> SendsPerMinute:
    """Every minute of the span, a zero where nothing was sent."""
    by_minute = dict(sends)
    starts = [since + index * _MINUTE for index in range(minutes)]
    return SendsPerMinute(
        since=since,
        until=since + minutes * _MINUTE,
        minutes=starts,
        counts=[by_minute.get(start, 0) for start in starts],
    )


def _floor_minute(instant: datetime) -> datetime:
    return instant.replace(second=0, microsecond=0)


async def sends_per_minute(
    session: AsyncSession, *, hours: int, mailing_id: int | None = None
) -> SendsPerMinute:
    """Sends per minute over the last ``hours`` (1 to 24), up to the current minute.

    For one mailing that sends no more, the span ends at its last send instead, so that
    its chart shows when it was sent rather than an empty recent past.
    """
    if not 1 <= hours <= MAX_CHART_HOURS:
        raise ValueError(f"hours must be 1 to {MAX_CHART_HOURS}")
    end = await mailings_repository.database_now(session)
    if mailing_id is not None:
        counters = await repository.mailing_counters(session, mailing_id)
        if counters is None:
            raise not_found(mailing_id)
        over = counters.status in (MailingStatus.finished.value, MailingStatus.cancelled.value)
        if over and counters.last_sent_at is not None:
            end = min(end, counters.last_sent_at)
    minutes = hours * 60
    since = _floor_minute(end) + _MINUTE - minutes * _MINUTE
    sends = await repository.sends_per_minute(
        session, since=since, until=since + minutes * _MINUTE, mailing_id=mailing_id
    )
    return minute_buckets(sends, since=since, minutes=minutes)


async def overview(session: AsyncSession, *, after_id: int, limit: int) -> StatsPage:
    rows = await repository.mailing_counts_page(session, after_id=after_id, limit=limit + 1)
    items = []
    for row in rows[:limit]:
        counts = _counts(row)
        items.append(
            MailingCounts(
                mailing_id=row.id,
                text=row.text,
                status=MailingStatus(row.status),
                counts=counts,
                total=counts.message_count(),
            )
        )
    return StatsPage(
        items=items,
        totals=await totals(session),
        next_cursor=next_cursor([row.id for row in rows], limit),
    )


async def of_mailing(session: AsyncSession, mailing_id: int) -> MailingStats:
    row = await repository.mailing_counters(session, mailing_id)
    if row is None:
        raise not_found(mailing_id)
    counts = _counts(row)
    errors = await repository.error_classes(session, mailing_id)
    return MailingStats(
        mailing_id=mailing_id,
        status=MailingStatus(row.status),
        counts=counts,
        total=counts.message_count(),
        attempts=row.attempts,
        first_sent_at=row.first_sent_at,
        last_sent_at=row.last_sent_at,
        errors=[ErrorClassCount(error_class=name, count=count) for name, count in errors],
    )
