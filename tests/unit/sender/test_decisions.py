"""What becomes of a message: the delay queue chosen by backoff, Retry-After and the
mailing's end, and the outcome of each judgement."""

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from herald_common.domain import MessageStatus
from herald_sender.classification import ErrorClass, Judgement, Verdict
from herald_sender.decisions import (
    BLOCKED,
    Decision,
    Defer,
    Finish,
    Reschedule,
    Retries,
    backoff_tier,
    blocked_by_terms,
    conclude,
    tier_after_failures,
)
from herald_sender.repository import MailingTerms
from tests.unit.sender.fakes import terms

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FAR = NOW + timedelta(days=1)


@pytest.mark.parametrize(
    ("attempts", "tier"),
    [(1, "5s"), (3, "5s"), (4, "30s"), (6, "30s"), (7, "2m"), (9, "2m"), (10, "10m"), (40, "10m")],
)
def test_backoff_grows_per_round_of_attempts(attempts: int, tier: str) -> None:
    assert backoff_tier(attempts, inprocess_attempts=3).name == tier


def test_backoff_with_one_attempt_per_round() -> None:
    names = [backoff_tier(attempts, inprocess_attempts=1).name for attempts in range(1, 6)]
    assert names == ["5s", "30s", "2m", "10m", "10m"]


def tier(attempts: int, *, retry_after: float | None = None, end_at: datetime = FAR) -> str | None:
    chosen = tier_after_failures(
        attempts=attempts, inprocess_attempts=3, retry_after=retry_after, now=NOW, end_at=end_at
    )
    return chosen.name if chosen else None


def test_backoff_tier_when_the_end_is_far() -> None:
    assert tier(3) == "5s"
    assert tier(6) == "30s"


def test_retry_after_lengthens_the_wait() -> None:
    assert tier(3, retry_after=20) == "30s"
    assert tier(3, retry_after=100) == "2m"
    # Longer than any tier: the longest.
    assert tier(3, retry_after=3600) == "10m"


def test_retry_after_shorter_than_backoff_keeps_backoff() -> None:
    assert tier(9, retry_after=1) == "2m"


def test_a_shorter_tier_when_backoff_would_overshoot_the_end() -> None:
    assert tier(9, end_at=NOW + timedelta(seconds=60)) == "30s"
    assert tier(9, end_at=NOW + timedelta(seconds=6)) == "5s"


def test_none_when_no_tier_comes_back_before_the_end() -> None:
    assert tier(3, end_at=NOW + timedelta(seconds=5)) is None
    # Retry-After forbids the shorter tiers that would fit.
    assert tier(3, retry_after=60, end_at=NOW + timedelta(seconds=100)) is None


# conclude() and blocked_by_terms(), called directly: no courier, no clock but NOW.
MOSCOW = ZoneInfo("Europe/Moscow")
RETRIES = Retries(max_attempts=12, inprocess_attempts=3)


def outcome(
    judgement: Judgement, of: MailingTerms | None = None, attempts: int = 1, **kwargs: Any
) -> Decision | None:
    return conclude(
        judgement,
        of or terms(start_at=NOW - timedelta(hours=1), end_at=FAR),
        NOW,
        timezone=MOSCOW,
        attempts=attempts,
        retries=RETRIES,
        cooldown=kwargs.pop("cooldown", 5.0),
        **kwargs,
    )


def test_a_sent_message_is_final_at_its_answer() -> None:
    answered = NOW - timedelta(seconds=1)
    assert outcome(Judgement(Verdict.sent), answered_at=answered) == Finish(
        MessageStatus.sent, at=answered
    )


def test_a_cancelled_mailing_or_a_returned_command_gets_no_outcome() -> None:
    for reason in (
        ErrorClass.mailing_cancelled,
        ErrorClass.client_unmatched,
        ErrorClass.command_returned,
    ):
        assert outcome(BLOCKED[reason]) is None


def test_a_pause_reschedules_at_the_next_opening_and_never_expires() -> None:
    evening = terms(
        start_at=NOW - timedelta(hours=1), end_at=FAR, window=(time(20), time(21))
    )  # 20:00 in Moscow is 17:00 UTC
    decided = outcome(BLOCKED[ErrorClass.mailing_paused], evening)
    assert decided == Reschedule(
        ErrorClass.mailing_paused, "the mailing is paused", NOW.replace(hour=17)
    )

    closing = terms(
        start_at=NOW - timedelta(hours=1),
        end_at=NOW + timedelta(minutes=1),
        window=(time(20), time(21)),
    )
    assert outcome(BLOCKED[ErrorClass.mailing_paused], closing) == Reschedule(
        ErrorClass.mailing_paused, "the mailing is paused", NOW
    )


def test_outside_a_window_that_never_opens_before_the_end_expires() -> None:
    closing = terms(
        start_at=NOW - timedelta(hours=1),
        end_at=NOW + timedelta(minutes=1),
        window=(time(20), time(21)),
    )
    decided = outcome(BLOCKED[ErrorClass.outside_window], closing)
    assert isinstance(decided, Finish)
    assert decided.status is MessageStatus.expired


def test_a_transient_failure_is_deferred_then_fails_when_attempts_run_out() -> None:
    failure = Judgement(Verdict.transient, ErrorClass.server_error, error="HTTP 503")
    decided = outcome(failure, attempts=3)
    assert isinstance(decided, Defer)
    assert decided.tier.name == "5s"
    assert decided.next_attempt_at == NOW + timedelta(seconds=5)

    exhausted = outcome(failure, attempts=12)
    assert isinstance(exhausted, Finish)
    assert exhausted.status is MessageStatus.failed


def test_an_open_circuit_defers_for_about_its_cooldown_without_an_attempt() -> None:
    decided = outcome(BLOCKED[ErrorClass.circuit_open], cooldown=45.0)
    assert isinstance(decided, Defer)
    assert decided.tier.name == "30s"


def test_the_end_blocks_before_a_pause_does() -> None:
    ended_and_paused = terms(start_at=NOW - timedelta(hours=2), end_at=NOW, paused=True)
    blocked = blocked_by_terms(
        ended_and_paused, NOW, timezone=MOSCOW, operator_code="900", tag=None
    )
    assert blocked == BLOCKED[ErrorClass.end_reached]
    running = terms(start_at=NOW - timedelta(hours=2), end_at=FAR)
    assert blocked_by_terms(running, NOW, timezone=MOSCOW, operator_code="900", tag=None) is None
    assert (
        blocked_by_terms(
            running, NOW, timezone=MOSCOW, operator_code="900", tag=None, returned=lambda: True
        )
        == BLOCKED[ErrorClass.command_returned]
    )
