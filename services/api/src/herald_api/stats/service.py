"""Statistics read models: counts by status per mailing, totals, one mailing in detail."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.errors import NotFound
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
from herald_common.domain import MailingStatus, MessageStatus


def _counts(row: Any) -> StatusCounts:
    return StatusCounts(**{status.value: getattr(row, status.value) for status in MessageStatus})


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
    totals = _counts(await repository.totals(session))
    return StatsPage(
        items=items,
        totals=StatusTotals(**totals.model_dump(), total=totals.message_count()),
        next_cursor=next_cursor([row.id for row in rows], limit),
    )


async def of_mailing(session: AsyncSession, mailing_id: int) -> MailingStats:
    row = await repository.mailing_counters(session, mailing_id)
    if row is None:
        raise NotFound(f"no mailing with id {mailing_id}")
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
