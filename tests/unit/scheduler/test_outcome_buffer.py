"""The ledger writer's buffer: whole deliveries, batches of about batch_size outcomes."""

from datetime import UTC, datetime
from typing import cast

from aio_pika.abc import AbstractIncomingMessage

from herald_common.contracts import MessageOutcome
from herald_common.domain import MessageStatus
from herald_scheduler.outcomes import OutcomeBuffer, StatusDelivery


def delivery(size: int) -> StatusDelivery:
    outcomes = [
        MessageOutcome(
            message_id=i,
            mailing_id=1,
            status=MessageStatus.sent,
            attempts=1,
            at=datetime(2030, 1, 1, tzinfo=UTC),
        )
        for i in range(size)
    ]
    return StatusDelivery(cast(AbstractIncomingMessage, object()), outcomes)


def test_full_when_batch_size_outcomes_are_waiting() -> None:
    buffer = OutcomeBuffer(batch_size=10)
    buffer.add(delivery(6))
    assert buffer.arrived.is_set()
    assert not buffer.full.is_set()
    buffer.add(delivery(6))
    assert buffer.full.is_set()


def test_take_returns_whole_deliveries_up_to_batch_size() -> None:
    buffer = OutcomeBuffer(batch_size=10)
    for size in (4, 4, 4):
        buffer.add(delivery(size))
    assert [len(d.outcomes) for d in buffer.take()] == [4, 4]
    assert not buffer.full.is_set()
    assert [len(d.outcomes) for d in buffer.take()] == [4]
    assert not buffer.arrived.is_set()


def test_an_oversized_delivery_is_taken_alone() -> None:
    buffer = OutcomeBuffer(batch_size=10)
    buffer.add(delivery(25))
    buffer.add(delivery(1))
    assert [len(d.outcomes) for d in buffer.take()] == [25]
    assert len(buffer) == 1


def test_put_back_restores_order_ahead_of_later_arrivals() -> None:
    buffer = OutcomeBuffer(batch_size=5)
    first, second = delivery(3), delivery(2)
    buffer.add(first)
    buffer.add(second)
    batch = buffer.take()
    buffer.add(late := delivery(1))
    buffer.put_back(batch)
    assert buffer.take()[0] is first
    assert buffer.take()[0] is late
