"""SQL for the outbox table: append events, claim unpublished rows, mark and purge them."""

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.contracts import ClientsChanged, MailingChanged
from herald_common.db.models import OutboxEvent


async def add(session: AsyncSession, events: Sequence[MailingChanged | ClientsChanged]) -> None:
    await session.execute(
        insert(OutboxEvent),
        [
            {
                "event_id": event.id,
                "event_type": event.type.value,
                "payload": event.model_dump(mode="json"),
                "correlation_id": event.correlation_id,
            }
            for event in events
        ],
    )


async def claim_unpublished(session: AsyncSession, limit: int) -> Sequence[OutboxEvent]:
    """Lock the oldest unpublished rows; other relays skip them until this transaction ends."""
    statement = (
        select(OutboxEvent)
        .where(OutboxEvent.published_at.is_(None))
        .order_by(OutboxEvent.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(statement)).all()


async def mark_published(session: AsyncSession, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.id.in_(ids)).values(published_at=func.now())
        )


async def purge_published(session: AsyncSession, older_than: timedelta, limit: int) -> int:
    """Delete up to ``limit`` rows published more than ``older_than`` ago; how many went."""
    doomed = (
        select(OutboxEvent.id)
        .where(OutboxEvent.published_at < func.now() - older_than)
        .order_by(OutboxEvent.id)
        .limit(limit)
        .scalar_subquery()
    )
    result = await session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(doomed)))
    return int(getattr(result, "rowcount", 0) or 0)


async def backlog(session: AsyncSession) -> int:
    statement = select(func.count()).where(OutboxEvent.published_at.is_(None))
    return int(await session.scalar(statement) or 0)
