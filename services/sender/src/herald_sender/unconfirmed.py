"""Final outcomes of commands that could not be acked, kept so that they are not sent again.

When the broker connection drops after the external API accepted a command's messages and
before the command was acked, the command comes back (RabbitMQ redelivers what was not
acked) while the ledger may still say the messages are unsent: its status event was not
confirmed, or not yet applied. A sender reading the ledger would send them a second time.
This sender knows better. It keeps those outcomes, publishes the unconfirmed ones as soon
as the broker is back, and when such a message comes back in a command, reports the kept
outcome instead of calling the API again. A command redelivered
to another sender is not covered (that sender does not know), nor a sender that dies.

Only final outcomes are kept: a message that is to be retried is retried.
"""

import time
from dataclasses import dataclass
from typing import Any

from herald_common.domain import FINAL_STATUSES

_FINAL = frozenset(status.value for status in FINAL_STATUSES)


@dataclass(slots=True)
class _Kept:
    outcome: dict[str, Any]
    kept_at: float
    published: bool = False


class UnconfirmedOutcomes:
    def __init__(self, *, keep_seconds: float = 600.0) -> None:
        # Long enough for the command to come back; by then the ledger knows anyway.
        self._keep_seconds = keep_seconds
        self._kept: dict[int, _Kept] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, outcomes: list[dict[str, Any]], *, published: bool = False) -> None:
        """Keep the final ones of these outcomes: their event was not confirmed, or it was
        (``published``) but their command could not be acked and comes back."""
        now = time.monotonic()
        for outcome in outcomes:
            if outcome["status"] in _FINAL:
                self._kept[outcome["message_id"]] = _Kept(outcome, now, published)

    def take(self, message_ids: list[int]) -> dict[int, dict[str, Any]]:
        """The kept outcomes of these messages, which then stop being kept."""
        if not self._kept:
            return {}
        return {
            message_id: kept.outcome
            for message_id in message_ids
            if (kept := self._kept.pop(message_id, None)) is not None
        }

    def unpublished(self) -> list[dict[str, Any]]:
        self._expire()
        return [kept.outcome for kept in self._kept.values() if not kept.published]

    def published(self, outcomes: list[dict[str, Any]]) -> None:
        """These were published since (confirmed); still kept, for a command coming back."""
        for outcome in outcomes:
            kept = self._kept.get(outcome["message_id"])
            if kept is not None and kept.outcome is outcome:
                kept.published = True

    def _expire(self) -> None:
        horizon = time.monotonic() - self._keep_seconds
        for message_id in [i for i, kept in self._kept.items() if kept.kept_at < horizon]:
            del self._kept[message_id]
