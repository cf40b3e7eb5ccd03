"""Grouping claimed rows into send commands."""

import pytest

from herald_scheduler.commands import ClaimedMessage, commands_for


def claimed(message_id: int, mailing_id: int, attempts: int = 0) -> ClaimedMessage:
    return ClaimedMessage(message_id, mailing_id, attempts, f"corr-{mailing_id}")


def test_one_mailing_per_command_and_at_most_batch_size() -> None:
    rows = [claimed(i, 1) for i in range(1, 6)] + [claimed(i, 2) for i in range(6, 8)]
    commands = commands_for(rows, batch_size=2)
    assert [(c.mailing_id, [m.id for m in c.messages]) for c in commands] == [
        (1, [1, 2]),
        (1, [3, 4]),
        (1, [5]),
        (2, [6, 7]),
    ]


def test_command_carries_attempts_and_the_mailings_correlation_id() -> None:
    (command,) = commands_for([claimed(1, 9, attempts=3), claimed(2, 9)], batch_size=100)
    assert command.correlation_id == "corr-9"
    assert [(m.id, m.attempts) for m in command.messages] == [(1, 3), (2, 0)]


def test_interleaved_mailings_keep_first_due_order_within_each() -> None:
    rows = [claimed(1, 1), claimed(2, 2), claimed(3, 1), claimed(4, 2)]
    commands = commands_for(rows, batch_size=10)
    assert [[m.id for m in c.messages] for c in commands] == [[1, 3], [2, 4]]


def test_every_claimed_row_is_in_exactly_one_command() -> None:
    rows = [claimed(i, i % 7) for i in range(1, 1001)]
    ids = [m.id for c in commands_for(rows, batch_size=33) for m in c.messages]
    assert sorted(ids) == list(range(1, 1001))


def test_commands_have_distinct_ids() -> None:
    commands = commands_for([claimed(i, 1) for i in range(10)], batch_size=1)
    assert len({c.id for c in commands}) == 10


def test_nothing_claimed_gives_no_command() -> None:
    assert commands_for([], batch_size=10) == []


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        commands_for([claimed(1, 1)], batch_size=0)
