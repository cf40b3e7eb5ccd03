"""Choosing the delay queue: backoff by attempts, Retry-After, and the mailing's end."""

from datetime import UTC, datetime, timedelta

import pytest

from herald_sender.deferral import backoff_tier, tier_for_retry

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
    chosen = tier_for_retry(
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
