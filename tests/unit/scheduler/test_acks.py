"""The ledger writer acks every delivery of an applied batch, even past a failed ack."""

from typing import cast

from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import ChannelInvalidStateError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_scheduler.outcomes import OutcomeWriter, StatusDelivery


class Message:
    """A delivery's message; a stale one belongs to a channel closed by a reconnect."""

    def __init__(self, *, stale: bool = False) -> None:
        self.stale = stale
        self.processed = False

    async def ack(self) -> None:
        if self.stale:
            raise ChannelInvalidStateError("No active transport for channel")
        self.processed = True


async def test_a_stale_delivery_at_the_head_does_not_leave_the_live_ones_unacked() -> None:
    messages = [Message(stale=True), Message(), Message()]
    batch = [StatusDelivery(cast(AbstractIncomingMessage, m), []) for m in messages]
    # No outcomes: nothing reaches the database, so no session is ever made.
    writer = OutcomeWriter(
        cast(async_sessionmaker[AsyncSession], None), batch_size=10, batch_wait=0.01
    )

    await writer.apply(batch)

    assert [m.processed for m in messages] == [False, True, True]
