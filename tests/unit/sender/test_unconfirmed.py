"""Outcomes kept when a command could not be acked: which are kept, taken, republished."""

from datetime import UTC, datetime
from typing import Any

import pytest

from herald_common.domain import MessageStatus
from herald_sender.unconfirmed import UnconfirmedOutcomes

AT = datetime(2026, 3, 2, 12, tzinfo=UTC)


def outcome(message_id: int, status: MessageStatus = MessageStatus.sent) -> dict[str, Any]:
    return {"message_id": message_id, "mailing_id": 1, "status": status, "attempts": 1, "at": AT}


def test_keeps_final_outcomes_only() -> None:
    kept = UnconfirmedOutcomes()
    kept.keep(
        [
            outcome(1),
            outcome(2, MessageStatus.failed),
            outcome(3, MessageStatus.expired),
            outcome(4, MessageStatus.retrying),  # to be retried, not remembered
        ]
    )
    assert sorted(kept.take([1, 2, 3, 4])) == [1, 2, 3]


def test_take_hands_out_each_outcome_once() -> None:
    kept = UnconfirmedOutcomes()
    sent = outcome(7)
    kept.keep([sent, outcome(8)])
    assert kept.take([7, 9]) == {7: sent}
    assert kept.take([7]) == {}
    assert len(kept) == 1


def test_unpublished_until_published_then_still_kept_for_a_returning_command() -> None:
    kept = UnconfirmedOutcomes()
    first, second = outcome(1), outcome(2)
    kept.keep([first, second])
    assert kept.unpublished() == [first, second]
    kept.published([first])
    assert kept.unpublished() == [second]
    assert kept.take([1]) == {1: first}


def test_outcomes_whose_event_went_out_are_not_published_again() -> None:
    kept = UnconfirmedOutcomes()
    kept.keep([outcome(1)], published=True)
    assert kept.unpublished() == []
    assert list(kept.take([1])) == [1]


def test_a_newer_outcome_is_not_marked_by_an_older_publication() -> None:
    kept = UnconfirmedOutcomes()
    older = outcome(1)
    kept.keep([older])
    newer = outcome(1, MessageStatus.failed)
    kept.keep([newer])
    kept.published([older])
    assert kept.unpublished() == [newer]


def test_forgets_after_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("herald_sender.unconfirmed.time.monotonic", lambda: now[0])
    kept = UnconfirmedOutcomes(keep_seconds=60)
    kept.keep([outcome(1)])
    now[0] += 61
    assert kept.unpublished() == []
    assert kept.take([1]) == {}
