"""Domain events written to the outbox in the caller's transaction.

The session is flagged so that, once the request's transaction commits, the relay
is woken to publish at once instead of at its next sweep. Each event is also logged
(``client.created``, ``mailing.updated``...) with the ids it names.
"""

from collections.abc import Sequence
from typing import Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api import correlation
from herald_api.outbox import repository
from herald_common.contracts import ClientsChanged, EventType, MailingChanged

OUTBOX_WRITTEN = "herald.outbox_written"
# A bulk import's event names thousands of clients; each of its log lines names at most
# this many, so that a line stays small and every client is still found by its id.
CLIENT_IDS_PER_LINE = 1000

log = structlog.get_logger()

MailingEventType = Literal[
    EventType.mailing_created,
    EventType.mailing_updated,
    EventType.mailing_deleted,
    EventType.mailing_paused,
    EventType.mailing_resumed,
    EventType.mailing_cancelled,
]
ClientEventType = Literal[
    EventType.client_created, EventType.client_updated, EventType.client_deleted
]


async def record(session: AsyncSession, events: Sequence[MailingChanged | ClientsChanged]) -> None:
    if not events:
        return
    await repository.add(session, events)
    session.info[OUTBOX_WRITTEN] = True
    for event in events:
        _log_change(event)


def _log_change(event: MailingChanged | ClientsChanged) -> None:
    """Log the change; the one entity it names is bound for the rest of the request, so
    that the request's access line names it too (the id of a created row included)."""
    if isinstance(event, MailingChanged):
        structlog.contextvars.bind_contextvars(mailing_id=event.mailing_id)
        log.info(event.type.value, revision=event.revision, event_id=str(event.id))
        return
    ids = event.client_ids
    if len(ids) == 1:
        structlog.contextvars.bind_contextvars(client_id=ids[0])
        log.info(event.type.value, event_id=str(event.id))
        return
    for start in range(0, len(ids), CLIENT_IDS_PER_LINE):
        log.info(
            event.type.value,
            client_ids=ids[start : start + CLIENT_IDS_PER_LINE],
            count=len(ids),
            event_id=str(event.id),
        )


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
