"""Message contracts carried over RabbitMQ: domain events, send commands, status events.

Every envelope carries an id, a type, a timestamp, a correlation id and a schema
version. Events are past tense (``mailing.created``), commands imperative
(``send_messages``). Payloads carry ids, not state: consumers read the current
state from PostgreSQL, so a duplicate or late event cannot undo a newer change.
"""

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from herald_common.domain import MessageStatus

SCHEMA_VERSION = 1


def _new_id() -> uuid.UUID:
    return uuid.uuid4()


def _now() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(default_factory=_new_id)
    occurred_at: datetime = Field(default_factory=_now)
    correlation_id: str | None = None
    schema_version: int = SCHEMA_VERSION


class EventType(StrEnum):
    mailing_created = "mailing.created"
    mailing_updated = "mailing.updated"
    mailing_deleted = "mailing.deleted"
    mailing_paused = "mailing.paused"
    mailing_resumed = "mailing.resumed"
    mailing_cancelled = "mailing.cancelled"
    client_created = "client.created"
    client_updated = "client.updated"
    client_deleted = "client.deleted"


class MailingChanged(Envelope):
    """A mailing was created, changed, paused, resumed, cancelled or deleted (its type).

    The routing key is the type; every type leads the scheduler to the same reconcile.
    """

    type: Literal[
        EventType.mailing_created,
        EventType.mailing_updated,
        EventType.mailing_deleted,
        EventType.mailing_paused,
        EventType.mailing_resumed,
        EventType.mailing_cancelled,
    ]
    mailing_id: int
    revision: int


class ClientsChanged(Envelope):
    """Clients were created, updated or deleted: one client, or a chunk of a bulk import."""

    type: Literal[EventType.client_created, EventType.client_updated, EventType.client_deleted]
    client_ids: list[int]


DomainEvent = Annotated[MailingChanged | ClientsChanged, Field(discriminator="type")]
domain_event_adapter: TypeAdapter[MailingChanged | ClientsChanged] = TypeAdapter(DomainEvent)


class MessageRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    # HTTP attempts already made for this message; a deferred command carries it forward.
    attempts: int = 0


class SendMessages(Envelope):
    """Command to the senders: deliver these messages of one mailing."""

    type: Literal["send_messages"] = "send_messages"
    mailing_id: int
    messages: list[MessageRef]
    # The dispatch this command belongs to: a sender sends only rows that still carry it,
    # so a command published twice, or one re-dispatched after its lease ran out, sends
    # nothing twice. A deferred copy carries its original's token.
    token: uuid.UUID | None = None


class MessageOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: int
    mailing_id: int
    status: MessageStatus
    attempts: int
    at: datetime
    error_class: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    # The dispatch token of the command that produced this outcome (see SendMessages).
    token: uuid.UUID | None = None


class MessagesProgressed(Envelope):
    """Status event from a sender: what happened to the messages of one command."""

    type: Literal["messages_progressed"] = "messages_progressed"
    outcomes: list[MessageOutcome]
