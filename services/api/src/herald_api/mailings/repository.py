"""SQL for mailings, their counters row and their messages.

A mailing's status is derived in SQL from the transaction's ``now()``, so that the
status shown and the status filtered on always agree. A deleted mailing (``deleted_at``
set) is found by none of these reads: to the API it no longer exists.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    String,
    and_,
    any_,
    bindparam,
    case,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.mailings.controls import Control
from herald_common.db.models import Client, Mailing, MailingCounters, Message
from herald_common.domain import MailingStatus, MessageStatus

_now = func.now()


# In order of precedence (see MailingStatus): a cancelled mailing stays cancelled after
# its end, and a paused one is finished once its end has passed.
def _status_expression() -> ColumnElement[str]:
    return case(
        (Mailing.cancelled_at.is_not(None), literal(MailingStatus.cancelled.value)),
        (Mailing.end_at <= _now, literal(MailingStatus.finished.value)),
        (Mailing.paused_at.is_not(None), literal(MailingStatus.paused.value)),
        (Mailing.start_at <= _now, literal(MailingStatus.running.value)),
        else_=literal(MailingStatus.scheduled.value),
    )


STATUS = _status_expression().label("status")
# Every read of the API goes through this: a deleted mailing answers 404.
VISIBLE = Mailing.deleted_at.is_(None)


def _has_status(status: MailingStatus) -> ColumnElement[bool]:
    """Whether a mailing is in ``status``: the status expression's cases, each one
    excluding those that come before it."""
    live = Mailing.cancelled_at.is_(None)
    ongoing = and_(live, Mailing.end_at > _now)
    conditions = {
        MailingStatus.cancelled: Mailing.cancelled_at.is_not(None),
        MailingStatus.finished: and_(live, Mailing.end_at <= _now),
        MailingStatus.paused: and_(ongoing, Mailing.paused_at.is_not(None)),
        MailingStatus.running: and_(ongoing, Mailing.paused_at.is_(None), Mailing.start_at <= _now),
        MailingStatus.scheduled: and_(
            ongoing, Mailing.paused_at.is_(None), Mailing.start_at > _now
        ),
    }
    return conditions[status]


MailingWithStatus = tuple[Mailing, MailingStatus]


def _with_status(row: Any) -> MailingWithStatus:
    return row[0], MailingStatus(row[1])


async def add(session: AsyncSession, values: dict[str, Any]) -> MailingWithStatus:
    """Insert the mailing and its zeroed counters row, in the caller's transaction."""
    row = (await session.execute(insert(Mailing).values(**values).returning(Mailing, STATUS))).one()
    mailing, status = _with_status(row)
    await session.execute(insert(MailingCounters).values(mailing_id=mailing.id))
    return mailing, status


async def get(session: AsyncSession, mailing_id: int) -> MailingWithStatus | None:
    row = (
        await session.execute(select(Mailing, STATUS).where(Mailing.id == mailing_id, VISIBLE))
    ).one_or_none()
    return None if row is None else _with_status(row)


async def lock(session: AsyncSession, mailing_id: int) -> MailingWithStatus | None:
    """The mailing and its status, locked until the transaction ends, so that changes
    serialise and each one decides on the status it found."""
    statement = (
        select(Mailing, STATUS).where(Mailing.id == mailing_id, VISIBLE).with_for_update(of=Mailing)
    )
    row = (await session.execute(statement)).one_or_none()
    return None if row is None else _with_status(row)


async def exists(session: AsyncSession, mailing_id: int) -> bool:
    statement = select(Mailing.id).where(Mailing.id == mailing_id, VISIBLE)
    return (await session.scalar(statement)) is not None


async def change(
    session: AsyncSession, mailing_id: int, values: dict[str, Any]
) -> MailingWithStatus:
    """Apply the values, bump the revision; the scheduler reconciles up to it."""
    statement = (
        update(Mailing)
        .where(Mailing.id == mailing_id)
        .values(**values, revision=Mailing.revision + 1, updated_at=_now)
        .returning(Mailing, STATUS)
    )
    return _with_status((await session.execute(statement)).one())


# What each operator control sets. A cancel ends a pause too: paused_at then says only
# that a mailing is paused now (or ended while it was).
_CONTROL_VALUES: dict[Control, dict[str, Any]] = {
    Control.pause: {"paused_at": _now},
    Control.resume: {"paused_at": None},
    Control.cancel: {"cancelled_at": _now, "paused_at": None},
}


async def apply_control(
    session: AsyncSession, mailing_id: int, control: Control, correlation_id: str | None
) -> MailingWithStatus:
    """Pause, resume or cancel the mailing (locked by the caller) and bump its revision."""
    values = {**_CONTROL_VALUES[control], "correlation_id": correlation_id}
    return await change(session, mailing_id, values)


async def delete(session: AsyncSession, mailing_id: int, correlation_id: str | None) -> int | None:
    """Mark the mailing deleted; its new revision, or None when absent or deleted already.

    A mailing that has not ended is cancelled too, so that the scheduler and the senders,
    which know only ``cancelled_at``, stop it as they stop a cancelled one. One that has
    ended keeps its cancel state: what it left unsent expires, as it would have.
    """
    statement = (
        update(Mailing)
        .where(Mailing.id == mailing_id, VISIBLE)
        .values(
            deleted_at=_now,
            cancelled_at=case(
                (and_(Mailing.cancelled_at.is_(None), Mailing.end_at > _now), _now),
                else_=Mailing.cancelled_at,
            ),
            revision=Mailing.revision + 1,
            updated_at=_now,
            correlation_id=correlation_id,
        )
        .returning(Mailing.revision)
    )
    return await session.scalar(statement)


async def page(
    session: AsyncSession,
    *,
    after_id: int,
    limit: int,
    status: MailingStatus | None,
    text: str | None = None,
    newest_first: bool = False,
) -> list[MailingWithStatus]:
    """A keyset page by id: ids above ``after_id`` ascending, or, ``newest_first``, ids
    below it descending (0 then means from the newest)."""
    statement = select(Mailing, STATUS).where(VISIBLE).limit(limit)
    if newest_first:
        statement = statement.order_by(Mailing.id.desc())
        if after_id:
            statement = statement.where(Mailing.id < after_id)
    else:
        statement = statement.where(Mailing.id > after_id).order_by(Mailing.id)
    if status is not None:
        statement = statement.where(_has_status(status))
    if text:
        statement = statement.where(Mailing.text.icontains(text, autoescape=True))
    return [_with_status(row) for row in await session.execute(statement)]


async def database_now(session: AsyncSession) -> datetime:
    """The transaction's now(), the instant statuses are derived from."""
    now: datetime = (await session.execute(select(_now))).scalar_one()
    return now


async def audience_by_timezone(
    session: AsyncSession, *, operator_codes: list[str] | None, tags: list[str] | None
) -> list[tuple[str, int]]:
    """(time zone, clients) of the clients a filter matches, by the scheduler's rule: a
    client matches when it has one of the codes given and one of the tags given."""
    clients = func.count().label("clients")
    statement = select(Client.timezone, clients).group_by(Client.timezone).order_by(Client.timezone)
    # One array parameter each, as the scheduler's "= ANY(filter_...)" reads them.
    if operator_codes is not None:
        codes = bindparam("operator_codes", operator_codes, type_=ARRAY(String))
        statement = statement.where(Client.operator_code == any_(codes))
    if tags is not None:
        statement = statement.where(
            Client.tag == any_(bindparam("tags", tags, type_=ARRAY(String)))
        )
    return [(str(zone), int(count)) for zone, count in await session.execute(statement)]


async def messages_page(
    session: AsyncSession,
    mailing_id: int,
    *,
    after_id: int,
    limit: int,
    status: MessageStatus | None,
) -> Sequence[Message]:
    statement = (
        select(Message)
        .where(Message.mailing_id == mailing_id, Message.id > after_id)
        .order_by(Message.id)
        .limit(limit)
    )
    if status is not None:
        statement = statement.where(Message.status == status.value)
    return (await session.scalars(statement)).all()
