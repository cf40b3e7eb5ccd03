"""SQL for statistics: the per-mailing counters (O(1) per mailing), the error breakdown,
and sends per minute from the ledger.

A deleted mailing is not shown (404, left out of pages and progress), but its messages
stay in the ledger and in the counters: totals over every mailing and the overall sends
per minute still count them, as the history they are.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.mailings.repository import STATUS, VISIBLE
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
        .where(Mailing.id > after_id, VISIBLE)
        .order_by(Mailing.id)
        .limit(limit)
    )
    return list(await session.execute(statement))


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
        .where(Mailing.id == mailing_id, VISIBLE)
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


def _progress_statement() -> Select[Any]:
    return (
        select(
            Mailing.id,
            Mailing.text,
            STATUS,
            Mailing.start_at,
            Mailing.end_at,
            *(_zero_if_missing(column) for column in _COUNT_COLUMNS),
        )
        .select_from(Mailing)
        .outerjoin(MailingCounters, MailingCounters.mailing_id == Mailing.id)
    )


async def mailing_progress(session: AsyncSession, mailing_id: int) -> Any | None:
    """(id, text, status, start_at, end_at, <each status>) of one mailing; None if unknown."""
    statement = _progress_statement().where(Mailing.id == mailing_id, VISIBLE)
    return (await session.execute(statement)).one_or_none()


async def active_progress(session: AsyncSession, limit: int) -> list[Any]:
    """The same rows for the live mailings that have not ended, the earliest start first:
    the running and paused ones, then the upcoming ones."""
    statement = (
        _progress_statement()
        .where(Mailing.cancelled_at.is_(None), Mailing.end_at > func.now(), VISIBLE)
        .order_by(Mailing.start_at, Mailing.id)
        .limit(limit)
    )
    return list(await session.execute(statement))


async def mailings_by_status(session: AsyncSession) -> list[tuple[str, int]]:
    """(status, mailings) for each status some (not deleted) mailing is in."""
    count = func.count().label("count")
    statement = select(STATUS, count).where(VISIBLE).group_by(STATUS)
    return [(str(status), int(total)) for status, total in await session.execute(statement)]


async def sends_per_minute(
    session: AsyncSession, *, since: datetime, until: datetime, mailing_id: int | None
) -> list[tuple[datetime, int]]:
    """(minute, messages sent in it) for the minutes of [since, until) that saw a send.

    Reads only the ledger rows of mailings whose counters say they sent since ``since``
    (the ledger writer keeps ``last_sent_at`` with the rows, in the same transaction), and
    of those only the sent ones, through the (mailing_id, status, id) index: ``sent_at``
    is set exactly when a message becomes ``sent``, its final status.
    """
    recent = select(MailingCounters.mailing_id).where(MailingCounters.last_sent_at >= since)
    if mailing_id is not None:
        recent = recent.where(MailingCounters.mailing_id == mailing_id)
    minute = func.date_trunc("minute", Message.sent_at).label("minute")
    statement = (
        select(minute, func.count().label("sent"))
        .where(
            Message.mailing_id.in_(recent),
            Message.status == MessageStatus.sent.value,
            Message.sent_at >= since,
            Message.sent_at < until,
        )
        .group_by(minute)
        .order_by(minute)
    )
    return [(at, int(sent)) for at, sent in await session.execute(statement)]
