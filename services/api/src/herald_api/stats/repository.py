"""SQL for statistics: the per-mailing counters (O(1) per mailing) and the error breakdown."""

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.mailings.repository import STATUS
from herald_common.db.models import Mailing, MailingCounters, Message
from herald_common.domain import MessageStatus

_COUNT_COLUMNS = [getattr(MailingCounters, status.value) for status in MessageStatus]


def _zero_if_missing(column: Any) -> Any:
    return func.coalesce(column, 0).label(column.key)


async def mailing_counts_page(session: AsyncSession, *, after_id: int, limit: int) -> list[Any]:
    """Rows of (id, text, status, <each status>) for a page of mailings."""
    statement = (
        select(
            Mailing.id,
            Mailing.text,
            STATUS,
            *(_zero_if_missing(column) for column in _COUNT_COLUMNS),
        )
        .outerjoin(MailingCounters, MailingCounters.mailing_id == Mailing.id)
        .where(Mailing.id > after_id)
        .order_by(Mailing.id)
        .limit(limit)
    )
    return list(await session.execute(statement))


async def totals(session: AsyncSession) -> Any:
    """One row with the sum of each status over every mailing."""
    statement = select(
        *(func.coalesce(func.sum(column), 0).label(column.key) for column in _COUNT_COLUMNS)
    )
    return (await session.execute(statement)).one()


async def mailing_counters(session: AsyncSession, mailing_id: int) -> Any | None:
    """(status, attempts, first/last sent, <each status>) of one mailing; None if unknown."""
    statement = (
        select(
            STATUS,
            _zero_if_missing(MailingCounters.attempts),
            MailingCounters.first_sent_at,
            MailingCounters.last_sent_at,
            *(_zero_if_missing(column) for column in _COUNT_COLUMNS),
        )
        .select_from(Mailing)
        .outerjoin(MailingCounters, MailingCounters.mailing_id == Mailing.id)
        .where(Mailing.id == mailing_id)
    )
    return (await session.execute(statement)).one_or_none()


async def error_classes(session: AsyncSession, mailing_id: int) -> list[tuple[str, int]]:
    count = func.count().label("count")
    statement = (
        select(Message.error_class, count)
        .where(Message.mailing_id == mailing_id, Message.error_class.is_not(None))
        .group_by(Message.error_class)
        .order_by(count.desc(), Message.error_class)
    )
    return [(str(name), int(total)) for name, total in await session.execute(statement)]
