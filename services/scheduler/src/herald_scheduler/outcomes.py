"""Apply the senders' status events to the ledger in batches, counters in the same transaction.

Deliveries accumulate until ``batch_size`` outcomes or ``batch_wait`` seconds, are applied
in one transaction, and are acked only after it commits. Applying is idempotent (the
forward rule ignores stale and duplicate outcomes), so a redelivered batch is harmless.
"""

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.contracts import MessageOutcome, MessagesProgressed
from herald_common.faults import FAULTS, describe
from herald_common.metrics import (
    LEDGER_BATCH_SIZE,
    LEDGER_LAG,
    MESSAGES_FINAL,
    MESSAGES_SENT_LATE,
)
from herald_common.runtime import Backoff, wait_any
from herald_scheduler.repository import ledger
from herald_scheduler.transitions import latest_outcomes

PREFETCH = 2000
# On shutdown, how long a batch may keep retrying a failing database before it is left
# unacked (the broker redelivers it).
STOP_GRACE = 3.0

log = structlog.get_logger()


@dataclass(frozen=True)
class StatusDelivery:
    message: AbstractIncomingMessage
    outcomes: list[MessageOutcome]


class OutcomeBuffer:
    """Parsed deliveries waiting for the next batch, in arrival order."""

    def __init__(self, batch_size: int) -> None:
        self._batch_size = batch_size
        self._deliveries: deque[StatusDelivery] = deque()
        self._outcomes = 0
        self.arrived = asyncio.Event()
        self.full = asyncio.Event()

    def __len__(self) -> int:
        return len(self._deliveries)

    def add(self, delivery: StatusDelivery) -> None:
        self._deliveries.append(delivery)
        self._outcomes += len(delivery.outcomes)
        self.arrived.set()
        if self._outcomes >= self._batch_size:
            self.full.set()

    def put_back(self, batch: list[StatusDelivery]) -> None:
        """Return an unapplied batch to the head, ahead of later arrivals."""
        for delivery in reversed(batch):
            self._deliveries.appendleft(delivery)
            self._outcomes += len(delivery.outcomes)
        if self._deliveries:
            self.arrived.set()
        if self._outcomes >= self._batch_size:
            self.full.set()

    def take(self) -> list[StatusDelivery]:
        """Whole deliveries from the head, up to about batch_size outcomes (at least one)."""
        batch: list[StatusDelivery] = []
        taken = 0
        while self._deliveries and (not batch or taken < self._batch_size):
            delivery = self._deliveries[0]
            if batch and taken + len(delivery.outcomes) > self._batch_size:
                break
            self._deliveries.popleft()
            batch.append(delivery)
            taken += len(delivery.outcomes)
        self._outcomes -= taken
        if not self._deliveries:
            self.arrived.clear()
        if self._outcomes < self._batch_size:
            self.full.clear()
        return batch


class OutcomeWriter:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        batch_size: int,
        batch_wait: float,
        lease_seconds: float = ledger.DEFAULT_LEASE_SECONDS,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._batch_wait = batch_wait
        self._lease_seconds = lease_seconds
        self._buffer = OutcomeBuffer(batch_size)

    async def on_delivery(self, message: AbstractIncomingMessage) -> None:
        try:
            event = MessagesProgressed.model_validate_json(message.body)
        except ValidationError as error:
            log.error("status.rejected", amqp_message_id=message.message_id, error=describe(error))
            await message.reject(requeue=False)
            return
        self._buffer.add(StatusDelivery(message, list(event.outcomes)))

    async def run(self, queue: AbstractQueue, stopping: asyncio.Event) -> None:
        """Consume and apply until ``stopping``; then apply and ack what was received."""
        consumer_tag = await queue.consume(self.on_delivery, no_ack=False)
        try:
            while not stopping.is_set():
                await wait_any(self._buffer.arrived, stopping, within=None)
                if stopping.is_set():
                    break
                # Let a batch fill up a little: one transaction for many outcomes.
                await wait_any(self._buffer.full, stopping, within=self._batch_wait)
                batch = self._buffer.take()
                if not await self._apply_with_retry(batch, stopping):
                    self._buffer.put_back(batch)
        finally:
            await _cancel_consumer(queue, consumer_tag)
            await self._drain()

    async def _drain(self) -> None:
        """After the consumer stopped: apply what is buffered, within a short grace period.

        What cannot be applied in time stays unacked; the broker redelivers it.
        """
        deadline = time.monotonic() + STOP_GRACE
        never = asyncio.Event()
        while len(self._buffer) and time.monotonic() < deadline:
            if not await self._apply_with_retry(self._buffer.take(), never, deadline=deadline):
                return

    async def _apply_with_retry(
        self,
        batch: list[StatusDelivery],
        stopping: asyncio.Event,
        *,
        deadline: float | None = None,
    ) -> bool:
        """Apply the batch, retrying through outages; False if stopped or out of time first."""
        backoff = Backoff()
        while True:
            try:
                try:
                    await self.apply(batch)
                except FAULTS:
                    raise
                except Exception:
                    log.exception("ledger.error")
                    await self._set_aside_poison(batch)
                return True
            except FAULTS as error:
                pause = backoff.next_delay()
                log.warning("ledger.failed", error=describe(error), retry_in=round(pause, 2))
            if stopping.is_set() or (deadline is not None and time.monotonic() + pause > deadline):
                return False
            await wait_any(stopping, within=pause)

    async def _set_aside_poison(self, batch: list[StatusDelivery]) -> None:
        """Not an outage: apply delivery by delivery and park the one that fails in herald.dead,
        so that one bad event cannot stop the ledger. Outages still propagate (re-applying
        what already went through is harmless)."""
        for delivery in batch:
            if delivery.message.processed:
                continue
            try:
                await self.apply([delivery])
            except FAULTS:
                raise
            except Exception:
                log.exception("status.poison", amqp_message_id=delivery.message.message_id)
                await delivery.message.reject(requeue=False)

    async def apply(self, batch: list[StatusDelivery]) -> None:
        """Apply one batch in one transaction, then ack its deliveries."""
        outcomes = latest_outcomes(o for delivery in batch for o in delivery.outcomes)
        received = sum(len(delivery.outcomes) for delivery in batch)
        if outcomes:
            async with self._sessionmaker.begin() as session:
                moves = await ledger.apply_outcomes(session, outcomes, self._lease_seconds)
        else:
            moves = ledger.Moves()
        await _ack_all(batch)
        now = datetime.now(UTC)
        LEDGER_BATCH_SIZE.observe(received)
        for outcome in outcomes:
            LEDGER_LAG.observe(max(0.0, (now - outcome.at).total_seconds()))
        for status, count in moves.finals.items():
            MESSAGES_FINAL.labels(status=status.value).inc(count)
        for status, count in moves.left_final.items():
            MESSAGES_SENT_LATE.labels(replaced=status.value).inc(count)
        log.info("ledger.applied", count=moves.total, ignored=received - moves.total)


async def _ack_all(batch: list[StatusDelivery]) -> None:
    """Ack after commit. A lost channel means the broker redelivers; re-applying is harmless.

    Every delivery is tried: after a reconnect a batch can hold stale deliveries of the
    old channel beside live ones of the new, and a live one left unacked would hold its
    prefetch slot until the channel closes again.
    """
    failed: list[str] = []
    for delivery in batch:
        if delivery.message.processed:
            continue  # acked on an earlier try of the same batch
        try:
            await delivery.message.ack()
        except FAULTS as error:
            failed.append(describe(error))
    if failed:
        log.warning("status.ack_failed", count=len(failed), error=failed[0])


async def _cancel_consumer(queue: AbstractQueue, consumer_tag: str) -> None:
    try:
        await queue.cancel(consumer_tag)
    except FAULTS as error:
        log.warning("status.consumer_cancel_failed", error=describe(error))
