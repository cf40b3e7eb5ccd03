"""The ledger's forward rule: which status outcome may replace a message's current status.

The SQL in ``repository.ledger`` applies the same rule set-based; this module is its
plain-Python statement (for tests and for folding a batch's outcomes per message).
"""

import uuid
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from herald_common.contracts import MessageOutcome
from herald_common.domain import MessageStatus

# How far along a message is; finals share the top rank, so none overtakes another.
STATUS_RANK: Mapping[MessageStatus, int] = MappingProxyType(
    {
        MessageStatus.scheduled: 0,
        MessageStatus.queued: 1,
        MessageStatus.retrying: 2,
        MessageStatus.sent: 3,
        MessageStatus.failed: 3,
        MessageStatus.expired: 3,
        MessageStatus.cancelled: 3,
    }
)
# What the external API settled: nothing may overwrite it.
SETTLED_STATUSES = frozenset({MessageStatus.sent, MessageStatus.failed})
# Rows a dispatch holds: a command (or its deferred copy) is out for them.
_HELD = frozenset({MessageStatus.queued, MessageStatus.retrying})
# Our own decisions to stop, which a late `sent` still overrides: the API accepted it.
STOPPED_STATUSES = frozenset({MessageStatus.expired, MessageStatus.cancelled})


def outcome_applies(
    row_status: MessageStatus,
    row_attempts: int,
    status: MessageStatus,
    attempts: int,
    *,
    row_token: uuid.UUID | None = None,
    token: uuid.UUID | None = None,
) -> bool:
    """True when an outcome (status, attempts) moves a row (row_status, row_attempts) forward."""
    if row_status in SETTLED_STATUSES:
        return False
    if status is MessageStatus.sent:
        # The API accepted it: that beats every status of ours, whatever the attempt
        # counts say (a delivery of an older command copy can report a lower one).
        return True
    if row_status in STOPPED_STATUSES:
        return False
    if status is MessageStatus.scheduled:
        # Handed back to the dispatcher (to wait for a window or the start): only the
        # dispatch that holds the row may do that, or a stale copy would undo a newer one.
        return (
            row_status in _HELD
            and token is not None
            and token == row_token
            and attempts >= row_attempts
        )
    if attempts != row_attempts:
        return attempts > row_attempts
    if status is MessageStatus.retrying and row_status is MessageStatus.retrying:
        # Another deferral at the same attempt count: refresh next_attempt_at and last_error.
        return True
    return STATUS_RANK[status] > STATUS_RANK[row_status]


def latest_outcomes(outcomes: Iterable[MessageOutcome]) -> list[MessageOutcome]:
    """One outcome per message, folded in arrival order with the forward rule.

    Applying the survivor alone leaves a row as applying them all in order would, for
    the sequences a sender produces. Contradictions (``sent`` and ``failed`` for one
    message) resolve to ``sent``: the API accepted the message, whatever else was said.
    """
    chosen: dict[int, MessageOutcome] = {}
    for outcome in outcomes:
        current = chosen.get(outcome.message_id)
        if current is None or _supersedes(outcome, current):
            chosen[outcome.message_id] = outcome
    return list(chosen.values())


def _supersedes(new: MessageOutcome, old: MessageOutcome) -> bool:
    if old.status is MessageStatus.sent:
        return False
    if new.status is MessageStatus.sent:
        return True
    return outcome_applies(
        old.status, old.attempts, new.status, new.attempts, row_token=old.token, token=new.token
    )
