"""Reading a day's figures from the ledger (``messages``), its mailings and their counters.

Every query takes the day as ``[start, end)`` instants on ``messages.finished_at`` (see
:mod:`herald_reporter.figures` for what counts), served by ``ix_messages_finished_at``.
Call :func:`begin_snapshot` first so that all of them read one consistent snapshot.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import Mailing, MailingCounters, Message
from herald_common.domain import MessageStatus


async def begin_snapshot(session: AsyncSession) -> None:
    """Make the session's transaction one read-only snapshot (the first statement in it)."""
    await session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))


def _in_day(start: datetime, end: datetime) -> Any:
    return and_(Message.finished_at >= start, Message.finished_at < end)


@dataclass(frozen=True)
class StatusRow:
    status: str
    messages: int
    attempts: int


async def totals_by_status(
    session: AsyncSession, start: datetime, end: datetime
) -> list[StatusRow]:
    """(status, messages, attempts) of the messages that reached a final status in the range."""
    statement = (
        select(Message.status, func.count(), func.coalesce(func.sum(Message.attempts), 0))
        .where(_in_day(start, end))
        .group_by(Message.status)
    )
    return [StatusRow(str(s), int(n), int(a)) for s, n, a in await session.execute(statement)]


@dataclass(frozen=True)
class MailingStatusRow:
    mailing_id: int
    status: str
    messages: int
    attempts: int
    first_sent_at: datetime | None
    last_sent_at: datetime | None


async def mailing_day_counts(
    session: AsyncSession, start: datetime, end: datetime
) -> list[MailingStatusRow]:
    """Per mailing and final status: messages, attempts, and first/last send in the range."""
    is_sent = Message.status == MessageStatus.sent.value
    statement = (
        select(
            Message.mailing_id,
            Message.status,
            func.count(),
            func.coalesce(func.sum(Message.attempts), 0),
            func.min(Message.sent_at).filter(is_sent),
            func.max(Message.sent_at).filter(is_sent),
        )
        .where(_in_day(start, end))
        .group_by(Message.mailing_id, Message.status)
    )
    return [
        MailingStatusRow(int(m), str(s), int(n), int(a), first, last)
        for m, s, n, a, first, last in await session.execute(statement)
    ]


async def mailing_day_errors(
    session: AsyncSession, start: datetime, end: datetime
) -> list[tuple[int, str, int]]:
    """(mailing_id, error_class, messages) of the messages that ended unsent in the range."""
    statement = (
        select(Message.mailing_id, Message.error_class, func.count())
        .where(
            _in_day(start, end),
            Message.error_class.is_not(None),
            Message.status != MessageStatus.sent.value,
        )
        .group_by(Message.mailing_id, Message.error_class)
    )
    return [(int(m), str(e), int(n)) for m, e, n in await session.execute(statement)]


_COUNTER_COLUMNS = [getattr(MailingCounters, status.value) for status in MessageStatus]


async def active_mailings(
    session: AsyncSession, start: datetime, end: datetime, with_messages: Sequence[int]
) -> list[Row[Any]]:
    """Mailings active in the range, with their counters (NULL when they have none yet).

    Active: the frame overlaps the range and the mailing was not deleted before it
    began, or it is one of ``with_messages`` (messages of it finished in the range).
    """
    statement = (
        select(
            Mailing.id,
            Mailing.text,
            Mailing.start_at,
            Mailing.end_at,
            Mailing.cancelled_at,
            MailingCounters.attempts,
            *_COUNTER_COLUMNS,
        )
        .outerjoin(MailingCounters, MailingCounters.mailing_id == Mailing.id)
        .where(
            or_(
                and_(
                    Mailing.start_at < end,
                    Mailing.end_at > start,
                    or_(Mailing.cancelled_at.is_(None), Mailing.cancelled_at >= start),
                ),
                Mailing.id.in_(list(with_messages)),
            )
        )
        .order_by(Mailing.id)
    )
    return list(await session.execute(statement))
