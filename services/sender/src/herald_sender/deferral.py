"""Which delay queue a deferred message goes through: backoff, Retry-After and end_at."""

from datetime import datetime, timedelta

from herald_common.broker.topology import RETRY_TIERS, RetryTier


def backoff_tier(attempts: int, inprocess_attempts: int) -> RetryTier:
    """Exponential backoff per round of in-process attempts: 5 s, 30 s, 2 min, then 10 min.

    A round is the ``inprocess_attempts`` requests made for one delivery of a command, so
    the first deferral waits 5 s, the second 30 s, and so on.
    """
    rounds = max(attempts - 1, 0) // max(inprocess_attempts, 1)
    return RETRY_TIERS[min(rounds, len(RETRY_TIERS) - 1)]


def tier_for_retry(
    *,
    attempts: int,
    inprocess_attempts: int,
    retry_after: float | None,
    now: datetime,
    end_at: datetime,
) -> RetryTier | None:
    """The tier for a message deferred after transient failures; None when none ends in time.

    The backoff tier, lengthened to honour Retry-After. When it would bring the message
    back at or after ``end_at``, a shorter tier that still honours Retry-After is better
    than giving up; None means no tier brings it back before the end.
    """
    wanted = backoff_tier(attempts, inprocess_attempts)
    shortest = _shortest_covering(retry_after or 0.0)
    longest_first = sorted(RETRY_TIERS, key=lambda tier: tier.seconds, reverse=True)
    for tier in longest_first:
        if tier.seconds > max(wanted.seconds, shortest.seconds):
            continue
        if tier.seconds < shortest.seconds:
            return None
        if now + timedelta(seconds=tier.seconds) < end_at:
            return tier
    return None


def _shortest_covering(seconds: float) -> RetryTier:
    """The shortest tier that waits at least ``seconds`` (the longest when none does)."""
    for tier in sorted(RETRY_TIERS, key=lambda tier: tier.seconds):
        if tier.seconds >= seconds:
            return tier
    return max(RETRY_TIERS, key=lambda tier: tier.seconds)
