"""Domain events written to the outbox in the caller's transaction.

The session is flagged so that, once the request's transaction commits, the relay
is woken to publish at once instead of at its next sweep.
"""

from collections.abc import Sequence
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from herald_api import correlation
from herald_api.outbox import repository
from herald_common.contracts import ClientsChanged, EventType, MailingChanged

OUTBOX_WRITTEN = "herald.outbox_written"

MailingEventType = Literal[
    EventType.mailing_created, EventType.mailing_updated, EventType.mailing_deleted
]
ClientEventType = Literal[
    EventType.client_created, EventType.client_updated, EventType.client_deleted
]


async def record(session: AsyncSession, events: Sequence[MailingChanged | ClientsChanged]) -> None:
    if not events:
        return
    await repository.add(session, events)
    session.info[OUTBOX_WRITTEN] = True


def wrote_events(session: AsyncSession) -> bool:
    """Whether this session's transaction wrote outbox rows; resets the flag."""
    return bool(session.info.pop(OUTBOX_WRITTEN, False))


def mailing_changed(event_type: MailingEventType, mailing_id: int, revision: int) -> MailingChanged:
    return MailingChanged(
        type=event_type,
        mailing_id=mailing_id,
        revision=revision,
        correlation_id=correlation.current(),
    )


def clients_changed(event_type: ClientEventType, client_ids: Sequence[int]) -> ClientsChanged:
    return ClientsChanged(
        type=event_type,
        client_ids=list(client_ids),
        correlation_id=correlation.current(),
    )
