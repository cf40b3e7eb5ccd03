"""Turn claimed ledger rows into send commands: one mailing per command, bounded size."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from herald_common.contracts import MessageRef, SendMessages


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A due ledger row the dispatcher holds locked until it is marked queued."""

    id: int
    mailing_id: int
    attempts: int
    correlation_id: str | None


def commands_for(claimed: Sequence[ClaimedMessage], batch_size: int) -> list[SendMessages]:
    """Group rows by mailing (first-due mailing first) into commands of at most batch_size."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    by_mailing: dict[int, list[ClaimedMessage]] = {}
    for message in claimed:
        by_mailing.setdefault(message.mailing_id, []).append(message)
    commands: list[SendMessages] = []
    for mailing_id, messages in by_mailing.items():
        for start in range(0, len(messages), batch_size):
            batch = messages[start : start + batch_size]
            commands.append(
                SendMessages(
                    mailing_id=mailing_id,
                    correlation_id=batch[0].correlation_id,
                    messages=[MessageRef(id=m.id, attempts=m.attempts) for m in batch],
                    token=uuid.uuid4(),
                )
            )
    return commands
