"""The forward rule and the folding of a batch's outcomes to one per message."""

import uuid
from datetime import UTC, datetime

import pytest

from herald_common.contracts import MessageOutcome
from herald_common.domain import MessageStatus as S
from herald_scheduler.transitions import latest_outcomes, outcome_applies

AT = datetime(2030, 1, 1, tzinfo=UTC)


def outcome(
    status: S, attempts: int, message_id: int = 1, error: str | None = None
) -> MessageOutcome:
    return MessageOutcome(
        message_id=message_id, mailing_id=7, status=status, attempts=attempts, at=AT, error=error
    )


@pytest.mark.parametrize(
    ("row", "row_attempts", "event", "attempts", "applies"),
    [
        # More attempts always moves an unfinished row forward.
        (S.queued, 0, S.retrying, 1, True),
        (S.retrying, 1, S.retrying, 2, True),
        (S.retrying, 2, S.sent, 3, True),
        (S.scheduled, 0, S.sent, 1, True),
        # Fewer attempts: a stale event.
        (S.retrying, 3, S.retrying, 2, False),
        (S.retrying, 3, S.failed, 2, False),
        # ...except `sent`: the API accepted it, so it beats every unfinished status at
        # any count (else the row ends failed or expired and a surviving copy sends again).
        (S.queued, 2, S.sent, 1, True),
        (S.retrying, 3, S.sent, 2, True),
        (S.retrying, 3, S.sent, 0, True),
        # Same attempts: only a higher rank moves it.
        (S.queued, 0, S.retrying, 0, True),
        (S.scheduled, 0, S.retrying, 0, True),
        (S.retrying, 2, S.expired, 2, True),
        (S.retrying, 2, S.failed, 2, True),
        (S.retrying, 1, S.queued, 1, False),
        # A second deferral at the same count refreshes next_attempt_at.
        (S.retrying, 1, S.retrying, 1, True),
        # Finals: nothing over sent or failed.
        (S.sent, 1, S.sent, 1, False),
        (S.sent, 1, S.retrying, 5, False),
        (S.sent, 1, S.failed, 2, False),
        (S.failed, 3, S.sent, 4, False),
        (S.failed, 3, S.retrying, 4, False),
        # ...but a late `sent` beats our own decision to stop.
        (S.expired, 0, S.sent, 1, True),
        (S.cancelled, 1, S.sent, 1, True),
        (S.expired, 2, S.sent, 1, True),
        (S.expired, 0, S.retrying, 1, False),
        (S.cancelled, 0, S.failed, 1, False),
        (S.expired, 0, S.expired, 1, False),
    ],
)
def test_forward_rule(row: S, row_attempts: int, event: S, attempts: int, applies: bool) -> None:
    assert outcome_applies(row, row_attempts, event, attempts) is applies


def test_duplicate_outcome_does_not_apply_twice() -> None:
    assert outcome_applies(S.queued, 0, S.sent, 1)
    assert not outcome_applies(S.sent, 1, S.sent, 1)


def test_fold_keeps_one_outcome_per_message() -> None:
    folded = latest_outcomes(
        [outcome(S.retrying, 1, 1), outcome(S.retrying, 1, 2), outcome(S.sent, 2, 1)]
    )
    assert sorted((o.message_id, o.status) for o in folded) == [(1, S.sent), (2, S.retrying)]


def test_fold_ignores_a_stale_outcome_that_arrives_last() -> None:
    folded = latest_outcomes([outcome(S.retrying, 3), outcome(S.retrying, 2)])
    assert [o.attempts for o in folded] == [3]


def test_fold_keeps_the_later_of_two_deferrals_at_the_same_count() -> None:
    folded = latest_outcomes(
        [outcome(S.retrying, 1, error="first"), outcome(S.retrying, 1, error="second")]
    )
    assert [o.error for o in folded] == ["second"]


def test_fold_lets_sent_win_over_a_contradicting_failure() -> None:
    assert [o.status for o in latest_outcomes([outcome(S.sent, 2), outcome(S.failed, 3)])] == [
        S.sent
    ]
    assert [o.status for o in latest_outcomes([outcome(S.failed, 3), outcome(S.sent, 2)])] == [
        S.sent
    ]


def test_fold_keeps_a_final_over_a_later_retry() -> None:
    folded = latest_outcomes([outcome(S.expired, 1), outcome(S.retrying, 2)])
    assert [o.status for o in folded] == [S.expired]


TOKEN = uuid.UUID(int=1)
OTHER = uuid.UUID(int=2)


@pytest.mark.parametrize(
    ("row", "row_token", "token", "applies"),
    [
        # The dispatch that holds the row may hand it back to wait for its window.
        (S.queued, TOKEN, TOKEN, True),
        (S.retrying, TOKEN, TOKEN, True),
        # A stale copy may not: the row was dispatched again under another token.
        (S.queued, OTHER, TOKEN, False),
        (S.queued, None, None, False),
        # Nor may it undo a status that no command holds.
        (S.scheduled, TOKEN, TOKEN, False),
        (S.sent, TOKEN, TOKEN, False),
        (S.expired, TOKEN, TOKEN, False),
    ],
)
def test_only_the_holding_dispatch_hands_a_row_back(
    row: S, row_token: uuid.UUID | None, token: uuid.UUID | None, applies: bool
) -> None:
    assert outcome_applies(row, 0, S.scheduled, 0, row_token=row_token, token=token) is applies


def test_a_scheduled_outcome_with_fewer_attempts_is_stale() -> None:
    assert not outcome_applies(S.retrying, 2, S.scheduled, 1, row_token=TOKEN, token=TOKEN)
