"""Consume domain events (mailing.*, client.*) and reconcile what they name.

An event carries ids only; the reconciler reads the current rows, so every event type
of one entity leads to the same state-based reconciliation. Acked after the work
commits; an unparseable event is rejected to herald.dead.
"""

import asyncio
import contextlib
from collections.abc import Awaitable
from enum import Enum
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError

from herald_common.broker.connection import CORRELATION_HEADER
from herald_common.contracts import ClientsChanged, MailingChanged, domain_event_adapter
from herald_common.faults import FAULTS, describe
from herald_common.runtime import Backoff, wait_any
from herald_scheduler.reconciler import Reconciler

PREFETCH = 32
# How long a shutdown waits for handlers already running.
STOP_GRACE = 6.0

log = structlog.get_logger()


class Handling(Enum):
    done = "done"
    stopped = "stopped"  # shutting down while an outage lasts: requeue
    broken = "broken"  # not an outage: park it in herald.dead instead of spinning on it


class DomainEventConsumer:
    def __init__(self, reconciler: Reconciler, *, concurrency: int) -> None:
        self._reconciler = reconciler
        self._slots = asyncio.Semaphore(concurrency)
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[Any]] = set()

    async def on_delivery(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._handle(message)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            event = domain_event_adapter.validate_json(message.body)
        except ValidationError as error:
            log.error(
                "event.rejected",
                amqp_message_id=message.message_id,
                routing_key=message.routing_key,
                error=describe(error),
            )
            await message.reject(requeue=False)
            return
        header = (message.headers or {}).get(CORRELATION_HEADER)
        context: dict[str, object] = {
            "correlation_id": event.correlation_id or (str(header) if header else None),
            "event_id": str(event.id),
            "event_type": event.type.value,
        }
        if isinstance(event, MailingChanged):
            context["mailing_id"] = event.mailing_id
        elif len(event.client_ids) == 1:
            context["client_id"] = event.client_ids[0]
        with structlog.contextvars.bound_contextvars(**context):
            async with self._slots:
                handling = await self._reconcile_with_retry(event)
            if handling is Handling.done:
                await _settle(message.ack())
            elif handling is Handling.stopped:
                await _settle(message.nack(requeue=True))
            else:
                await _settle(message.reject(requeue=False))

    async def _reconcile_with_retry(self, event: MailingChanged | ClientsChanged) -> Handling:
        """Reconcile, retrying through outages until it is done or the consumer stops."""
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                if isinstance(event, MailingChanged):
                    await self._reconciler.reconcile_mailing(event.mailing_id)
                else:
                    await self._reconciler.reconcile_clients(event.client_ids)
                return Handling.done
            except FAULTS as error:
                pause = backoff.next_delay()
                log.warning("event.failed", error=describe(error), retry_in=round(pause, 2))
            except Exception:
                log.exception("event.error")
                return Handling.broken
            await wait_any(self._stopping, within=pause)
        return Handling.stopped

    async def run(self, queue: AbstractQueue, stopping: asyncio.Event) -> None:
        """Consume until ``stopping``; then let running handlers finish (or requeue)."""
        consumer_tag = await queue.consume(self.on_delivery, no_ack=False)
        try:
            await stopping.wait()
        finally:
            with contextlib.suppress(*FAULTS):
                await queue.cancel(consumer_tag)
            await self._finish_in_flight()

    async def _finish_in_flight(self) -> None:
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=STOP_GRACE / 2)
            if pending:
                # Handlers stuck retrying an outage give up and requeue their events.
                self._stopping.set()
                _, pending = await asyncio.wait(pending, timeout=STOP_GRACE / 2)
            for task in pending:
                # Unacked, so redelivered; a half-done reconcile is finished by the next one.
                task.cancel()
        self._stopping.set()


async def _settle(settlement: Awaitable[None]) -> None:
    try:
        await settlement
    except FAULTS as error:
        # The channel is gone: the broker redelivers the event, reconciling again is harmless.
        log.warning("event.settle_failed", error=describe(error))
