"""The domain's vocabulary shared by every service: statuses and their order."""

from enum import StrEnum


class MessageStatus(StrEnum):
    """Where one (mailing, client) message stands. Changes only move forward."""

    scheduled = "scheduled"  # waiting in the ledger for its due_at
    queued = "queued"  # a send command carrying it was published
    retrying = "retrying"  # deferred after a transient failure or outside the window
    sent = "sent"
    failed = "failed"
    expired = "expired"
    cancelled = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {MessageStatus.sent, MessageStatus.failed, MessageStatus.expired, MessageStatus.cancelled}
)
UNSENT_STATUSES = frozenset({MessageStatus.scheduled, MessageStatus.queued, MessageStatus.retrying})


class MailingStatus(StrEnum):
    """A mailing's phase, derived from its frame and the operator's controls.

    In order of precedence: cancelled, then finished, then paused, then running or
    scheduled. A deleted mailing has no status: the API no longer shows it.
    """

    scheduled = "scheduled"  # start_at is still ahead
    running = "running"  # start_at <= now < end_at
    paused = "paused"  # an operator paused it before its end; resumable
    finished = "finished"  # end_at has passed
    cancelled = "cancelled"  # an operator cancelled it: nothing more is sent, for good
