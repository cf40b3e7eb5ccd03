"""What becomes of a message: pure functions of its judgement, its mailing's terms and the
time, which the courier asks twice per attempt.

- Before a request: may one start now (``blocked_by_terms``)?
- After it, or once it was blocked: what outcome does the message get (``conclude``)? It
  is sent, failed or expired for good; rescheduled in the ledger until it may be sent; or
  deferred through a delay queue (the tier chosen by ``tier_after_failures``); or it gets
  no outcome, when the scheduler cancels the row or the command comes back to be sent by
  whoever takes it.

Nothing here touches the network, the broker, a log or a metric.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from herald_common.broker.topology import RETRY_TIERS, RetryTier, longest_tier_within
from herald_common.domain import MessageStatus
from herald_common.send_window import SendWindow, first_due_at, is_inside
from herald_sender.classification import ErrorClass, Judgement, Verdict
from herald_sender.repository import MailingTerms

# A request is not started this close to the mailing's end: it could not get an answer
# in time, and it would reach the API at or after the end.
END_GUARD = timedelta(milliseconds=50)

BLOCKED = {
    reason: Judgement(Verdict.blocked, reason)
    for reason in (
        ErrorClass.end_reached,
        ErrorClass.outside_window,
        ErrorClass.before_start,
        ErrorClass.mailing_cancelled,
        ErrorClass.mailing_paused,
        ErrorClass.client_unmatched,
        ErrorClass.terms_unknown,
        ErrorClass.command_returned,
        ErrorClass.circuit_open,
        ErrorClass.shutting_down,
    )
}


def blocked_by_terms(
    terms: MailingTerms,
    now: datetime,
    *,
    timezone: ZoneInfo,
    operator_code: str | None,
    tag: str | None,
    returned: Callable[[], bool] | None = None,
) -> Judgement | None:
    """Why the mailing's current terms let no request for this client start now, or None."""
    # A deleted mailing, or a client out of its filter, is out for good; the scheduler
    # cancels those rows.
    if terms.cancelled_at is not None:
        return BLOCKED[ErrorClass.mailing_cancelled]
    if not terms.matches(operator_code, tag):
        return BLOCKED[ErrorClass.client_unmatched]
    if returned is not None and returned():
        return BLOCKED[ErrorClass.command_returned]
    if now >= deadline_of(terms):
        return BLOCKED[ErrorClass.end_reached]
    # Only after the end: the end expires a paused mailing's messages, the pause never.
    if terms.paused_at is not None:
        return BLOCKED[ErrorClass.mailing_paused]
    if now < terms.start_at:
        return BLOCKED[ErrorClass.before_start]
    if not is_inside(now, timezone, window_of(terms)):
        return BLOCKED[ErrorClass.outside_window]
    return None


def deadline_of(terms: MailingTerms) -> datetime:
    """The last moment a request may start."""
    return terms.end_at - END_GUARD


def window_of(terms: MailingTerms) -> SendWindow | None:
    return _window(terms.send_window_start, terms.send_window_end)


@lru_cache(maxsize=256)
def _window(start: time | None, end: time | None) -> SendWindow | None:
    if start is None or end is None:
        return None
    return SendWindow(start, end)


@dataclass(frozen=True, slots=True)
class Finish:
    """A final status."""

    status: MessageStatus
    reason: ErrorClass | None = None
    error: str | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Reschedule:
    """``scheduled`` again, due at ``due_at``: the row waits in the ledger, not in a queue."""

    reason: ErrorClass
    error: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Defer:
    """``retrying`` through a delay queue, back at ``next_attempt_at``."""

    tier: RetryTier
    reason: ErrorClass | None
    error: str | None
    next_attempt_at: datetime


Decision = Finish | Reschedule | Defer


@dataclass(frozen=True, slots=True)
class Retries:
    """How many attempts a message gets: in all, and per delivery of its command."""

    max_attempts: int
    inprocess_attempts: int


def conclude(
    judgement: Judgement,
    terms: MailingTerms,
    now: datetime,
    *,
    timezone: ZoneInfo,
    attempts: int,
    retries: Retries,
    cooldown: float,
    answered_at: datetime | None = None,
) -> Decision | None:
    """The message's outcome after this judgement; None when it gets none."""
    verdict, reason = judgement.verdict, judgement.error_class
    if reason in (ErrorClass.mailing_cancelled, ErrorClass.client_unmatched):
        return None  # the scheduler has cancelled (or will cancel) the row
    if reason is ErrorClass.command_returned:
        return None  # the command comes back, and whoever takes it sends it
    if verdict is Verdict.sent:
        return Finish(MessageStatus.sent, at=answered_at)
    if verdict is Verdict.permanent:
        return Finish(MessageStatus.failed, reason, judgement.error)
    if reason is ErrorClass.end_reached:
        return Finish(MessageStatus.expired, reason, "the mailing has ended")
    if reason in (ErrorClass.outside_window, ErrorClass.before_start):
        return _to_window(terms, now, timezone, reason)
    if reason is ErrorClass.mailing_paused:
        return _paused(terms, now, timezone)
    if verdict is Verdict.transient:
        return _after_failure(judgement, terms, now, attempts, retries)
    # Unauthorized, circuit open, shutting down: no fault of the message, so the delay
    # does not count as an attempt; it comes back when the circuit may be closed again.
    return _defer(longest_tier_within(cooldown), terms, now, reason, judgement.error)


def _to_window(
    terms: MailingTerms, now: datetime, timezone: ZoneInfo, reason: ErrorClass
) -> Decision:
    """Back to the dispatcher, due when it may next be sent; expired if never."""
    opening = first_due_at(max(now, terms.start_at), deadline_of(terms), timezone, window_of(terms))
    if opening is None:
        return Finish(MessageStatus.expired, reason, "no send window opens before the mailing ends")
    error = (
        "before the mailing's start"
        if reason is ErrorClass.before_start
        else "outside the client's send window"
    )
    return Reschedule(reason, error, opening)


def _paused(terms: MailingTerms, now: datetime, timezone: ZoneInfo) -> Decision:
    """Back to the ledger, attempts kept, for the dispatcher to claim after a resume.

    Due when it could next be sent under the current terms, or at once if never: never
    expired here, the pause must expire nothing (the resume's reconcile, or the sender
    after it, judges the window again).
    """
    due_at = (
        first_due_at(max(now, terms.start_at), deadline_of(terms), timezone, window_of(terms))
        or now
    )
    return Reschedule(ErrorClass.mailing_paused, "the mailing is paused", due_at)


def _after_failure(
    judgement: Judgement, terms: MailingTerms, now: datetime, attempts: int, retries: Retries
) -> Decision:
    last = judgement.error
    if now >= deadline_of(terms):
        # Still failing (or still in flight) when the mailing ended: abandoned.
        return Finish(
            MessageStatus.expired,
            ErrorClass.end_reached,
            f"the mailing ended before a successful attempt; last: {last}",
        )
    if attempts >= retries.max_attempts:
        return Finish(
            MessageStatus.failed,
            judgement.error_class,
            f"retries exhausted after {attempts} attempts; last: {last}",
        )
    tier = tier_after_failures(
        attempts=attempts,
        inprocess_attempts=retries.inprocess_attempts,
        retry_after=judgement.retry_after,
        now=now,
        end_at=deadline_of(terms),
    )
    if tier is None:
        return Finish(
            MessageStatus.expired,
            ErrorClass.end_reached,
            f"no retry fits before the mailing ends; last: {last}",
        )
    return _defer(tier, terms, now, judgement.error_class, last)


def _defer(
    tier: RetryTier,
    terms: MailingTerms,
    now: datetime,
    reason: ErrorClass | None,
    error: str | None,
) -> Decision:
    next_attempt_at = now + timedelta(seconds=tier.seconds)
    if next_attempt_at >= deadline_of(terms):
        return Finish(
            MessageStatus.expired,
            ErrorClass.end_reached,
            f"the mailing ends before the next attempt; last: {error}",
        )
    return Defer(tier, reason, error, next_attempt_at)


def backoff_tier(attempts: int, inprocess_attempts: int) -> RetryTier:
    """Exponential backoff per round of in-process attempts: 5 s, 30 s, 2 min, then 10 min.

    A round is the ``inprocess_attempts`` requests made for one delivery of a command, so
    the first deferral waits 5 s, the second 30 s, and so on.
    """
    rounds = max(attempts - 1, 0) // max(inprocess_attempts, 1)
    return RETRY_TIERS[min(rounds, len(RETRY_TIERS) - 1)]


def tier_after_failures(
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
