"""What a command's delivery reports: one outcome per message, for its status event, and
the messages to defer through each delay queue."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from herald_common.broker.topology import RetryTier
from herald_common.contracts import MessageRef, MessagesProgressed, SendMessages
from herald_common.domain import MessageStatus
from herald_sender.classification import ErrorClass


@dataclass(slots=True)
class CommandReport:
    """What became of a command's messages: one outcome each, and the ones to defer."""

    outcomes: list[dict[str, Any]] = field(default_factory=list)
    deferred: dict[RetryTier, list[MessageRef]] = field(default_factory=dict)

    def status_event(self, correlation_id: str | None) -> MessagesProgressed | None:
        if not self.outcomes:
            return None
        return MessagesProgressed.model_validate(
            {"outcomes": self.outcomes, "correlation_id": correlation_id}
        )

    def deferred_commands(
        self, mailing_id: int, correlation_id: str | None, token: uuid.UUID | None
    ) -> list[tuple[RetryTier, SendMessages]]:
        return [
            (
                tier,
                SendMessages(
                    mailing_id=mailing_id,
                    messages=refs,
                    correlation_id=correlation_id,
                    token=token,
                ),
            )
            for tier, refs in self.deferred.items()
        ]


def outcome(
    message_id: int,
    mailing_id: int,
    status: MessageStatus,
    attempts: int,
    at: datetime,
    error_class: ErrorClass | None = None,
    error: str | None = None,
    next_attempt_at: datetime | None = None,
    *,
    token: uuid.UUID | None,
) -> dict[str, Any]:
    """A ``MessageOutcome`` as a plain dict; the command's event validates them all at once."""
    return {
        "message_id": message_id,
        "mailing_id": mailing_id,
        "status": status,
        "attempts": attempts,
        "at": at,
        "error_class": error_class,
        "error": error,
        "next_attempt_at": next_attempt_at,
        "token": token,
    }


def mask_phone(phone: str) -> str:
    """Enough of a phone number to tell messages apart in logs, not to call anyone."""
    if len(phone) < 6:
        return "*" * len(phone)
    return f"{phone[:4]}{'*' * (len(phone) - 6)}{phone[-2:]}"
