"""Consuming send commands: read the ledger, deliver, publish outcomes, and only then ack.

Also follows the circuit breaker (stop taking commands while it is open, resume after the
cool-down) and drains on shutdown: no new commands, in-flight requests finish, messages
whose request did not start are deferred, and anything still unfinished goes back to
RabbitMQ.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.broker.connection import publish, to_message
from herald_common.broker.topology import (
    SEND_COMMANDS_QUEUE,
    STATUS_ROUTING_KEY,
    Topology,
    declare_topology,
)
from herald_common.contracts import MessagesProgressed, SendMessages
from herald_common.faults import FAULTS, describe
from herald_common.metrics import (
    RETRIES_SCHEDULED,
    SENDER_COMMANDS_DEAD_LETTERED,
    SENDER_COMMANDS_INFLIGHT,
    SENDER_STALE_MESSAGES,
)
from herald_common.settings import QueueType
from herald_sender.circuit import CircuitBreaker, CircuitState
from herald_sender.classification import excerpt
from herald_sender.delivery import Courier
from herald_sender.leases import LeaseKeeper
from herald_sender.mailing_watch import MailingWatch
from herald_sender.report import CommandReport
from herald_sender.repository import MessageState, take_messages
from herald_sender.unconfirmed import UnconfirmedOutcomes

log = structlog.get_logger()

BROKER_ERRORS = (AMQPError, ChannelInvalidStateError, ConnectionError, TimeoutError)


class CommandConsumer:
    def __init__(
        self,
        *,
        connection: AbstractRobustConnection,
        engine: AsyncEngine,
        courier: Courier,
        breaker: CircuitBreaker,
        queue_type: QueueType,
        prefetch: int,
        drain_seconds: float = 8.0,
        # How long to wait before handing a command back when the database or the broker
        # failed, so that a redelivery loop does not spin.
        failure_pause: float = 1.0,
        publish_timeout: float = 10.0,
        watch: MailingWatch | None = None,
        leases: LeaseKeeper | None = None,
        # How often outcomes whose event was not confirmed are published again.
        republish_interval: float = 1.0,
        # How long a redelivered command waits before reading the ledger: the sender that
        # had it may have sent its messages and be publishing their outcomes just now.
        redelivery_grace: float = 2.0,
    ) -> None:
        self._connection = connection
        self._engine = engine
        self._courier = courier
        self._breaker = breaker
        self._queue_type = queue_type
        self._prefetch = prefetch
        self._drain_seconds = drain_seconds
        self._failure_pause = failure_pause
        self._publish_timeout = publish_timeout
        self._watch = watch
        self._leases = leases or LeaseKeeper(engine)
        self._republish_interval = republish_interval
        self._redelivery_grace = redelivery_grace
        self._unconfirmed = UnconfirmedOutcomes()
        # Message id -> the delivery (task) working on it in this sender now.
        self._working_on: dict[int, asyncio.Task[None]] = {}
        self._handling: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._circuit_opened = asyncio.Event()
        self._queue: AbstractQueue | None = None
        self._topology: Topology | None = None
        self._consumer_tag: str | None = None
        self._consuming_lock = asyncio.Lock()
        breaker.add_listener(self._on_circuit_change)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then drain; returns when nothing is left in flight."""
        consume_channel = await self._connection.channel(publisher_confirms=False)
        publish_channel = await self._connection.channel(publisher_confirms=True)
        try:
            await consume_channel.set_qos(prefetch_count=self._prefetch)
            self._topology = await declare_topology(publish_channel, self._queue_type)
            self._queue = await consume_channel.get_queue(SEND_COMMANDS_QUEUE)
            if not self._breaker.is_open:
                await self._start_consuming()
            circuit = asyncio.create_task(self._follow_circuit(stop))
            republishing = asyncio.create_task(self._republish_unconfirmed(stop))
            log.info("sender.started", prefetch=self._prefetch)
            await stop.wait()
            log.info("sender.stopping", commands_in_flight=len(self._handling))
            self._stopping = True
            # Wake the circuit follower so that it returns (never cancelled halfway
            # through starting a consumer, which would leave one behind).
            self._circuit_opened.set()
            await circuit
            await self._stop_consuming()
            self._courier.stop_starting_requests()
            await self._drain()
            await republishing
        finally:
            await _close(consume_channel)
            await _close(publish_channel)
        log.info("sender.stopped")

    async def _on_command(self, message: AbstractIncomingMessage) -> None:
        # aiormq cancels this task when its channel closes (a broker restart, a network
        # cut) while the command's requests may be in flight or answered already: the work
        # runs in a task of its own, which finishes, so that its outcomes are not lost but
        # kept (see herald_sender.unconfirmed). Only the drain on shutdown cancels it.
        work = asyncio.create_task(self._work(message))
        self._handling.add(work)
        work.add_done_callback(self._handling.discard)
        await asyncio.shield(work)

    async def _work(self, message: AbstractIncomingMessage) -> None:
        SENDER_COMMANDS_INFLIGHT.inc()
        try:
            await self._handle(message)
        except asyncio.CancelledError:
            # Cut short by the drain deadline: the whole command goes back to the queue.
            await self._requeue(message)
            raise
        except Exception:
            # A bug (a SQL error, a broken invariant), not an outage: handed back, the
            # command would meet it again every second for as long as the mailing runs.
            # Parked in herald.dead it can be replayed once the bug is fixed; its rows
            # stay queued, so nothing is sent twice.
            log.exception("command.crashed", amqp_message_id=message.message_id)
            SENDER_COMMANDS_DEAD_LETTERED.labels(reason="bug").inc()
            await _settle(message.reject(requeue=False))
        finally:
            SENDER_COMMANDS_INFLIGHT.dec()

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            command = SendMessages.model_validate_json(message.body)
        except ValidationError as error:
            log.error(
                "command.rejected",
                amqp_message_id=message.message_id,
                body=excerpt(message.body),
                error=str(error)[:500],
            )
            SENDER_COMMANDS_DEAD_LETTERED.labels(reason="unreadable").inc()
            await _settle(message.reject(requeue=False))
            return
        correlation_id = command.correlation_id or message.correlation_id
        with structlog.contextvars.bound_contextvars(
            correlation_id=correlation_id, mailing_id=command.mailing_id
        ):
            if self._watch is None:
                await self._process(message, command, correlation_id)
                return
            self._watch.track(command.mailing_id)
            try:
                await self._process(message, command, correlation_id)
            finally:
                self._watch.untrack(command.mailing_id)

    async def _process(
        self, message: AbstractIncomingMessage, command: SendMessages, correlation_id: str | None
    ) -> None:
        """Deliver the command, once no earlier delivery here still works on its messages.

        A command whose channel died comes back while its first delivery may still be
        waiting for answers: the second waits for the first, then finds its outcomes kept.
        Coming back to another sender, it waits a grace period for the first sender to
        publish those outcomes, then reads the ledger.
        """
        task = asyncio.current_task()
        assert task is not None
        ids = [ref.id for ref in command.messages]
        working = self._working_on
        earlier = {other for i in ids if (other := working.get(i)) is not None}
        if earlier:
            log.info("command.waits_for_earlier_delivery", commands=len(earlier))
            await asyncio.wait(earlier)
        elif message.redelivered and self._redelivery_grace > 0:
            await asyncio.sleep(self._redelivery_grace)
        for message_id in ids:
            working[message_id] = task
        try:
            await self._process_alone(message, command, ids, correlation_id)
        finally:
            for message_id in ids:
                if working.get(message_id) is task:
                    del working[message_id]

    async def _process_alone(
        self,
        message: AbstractIncomingMessage,
        command: SendMessages,
        ids: list[int],
        correlation_id: str | None,
    ) -> None:
        # A command that has not started anything goes back whole while the circuit is open
        # or the sender is stopping: another sender (or this one, later) takes it.
        if self._holding_back():
            await self._requeue(message)
            return
        try:
            read_at = time.monotonic()
            async with self._engine.connect() as connection:
                states = await take_messages(connection, ids, command.token, self._leases.hold)
        except FAULTS as error:
            log.warning("command.ledger_unavailable", error=describe(error))
            await asyncio.sleep(self._failure_pause)
            await self._requeue(message)
            return
        if self._holding_back():
            await self._requeue(message)
            return
        self._leases.hold_messages((state.id for state in states), command.token)
        try:
            await self._deliver(message, command, ids, states, read_at, correlation_id)
        finally:
            self._leases.release(state.id for state in states)

    async def _deliver(
        self,
        message: AbstractIncomingMessage,
        command: SendMessages,
        ids: list[int],
        states: list[MessageState],
        read_at: float,
        correlation_id: str | None,
    ) -> None:
        if self._watch is not None and states:
            self._watch.offer(states[0].terms, read_at)
        wanted = set(ids)
        if len(states) < len(wanted):
            # Dispatched again under another token, settled already, or unknown: this
            # copy of the command must send none of them.
            stale = sorted(wanted - {state.id for state in states})
            SENDER_STALE_MESSAGES.inc(len(stale))
            log.info("command.stale_messages", message_ids=stale[:20], count=len(stale))
        # Messages this sender already finished in a delivery of this command it could not ack.
        kept = self._unconfirmed.take(ids)
        if kept:
            states = [state for state in states if state.id not in kept]
            log.info("command.unconfirmed_reported", count=len(kept))
        report = await self._courier.deliver(command, states, returned=_returned(message))
        report.outcomes[:0] = kept.values()
        try:
            async with asyncio.timeout(self._publish_timeout):
                await self._publish(report, command.mailing_id, correlation_id, command.token)
        except BROKER_ERRORS as error:
            # Not acked: the command is redelivered. The ledger keeps what it knows was
            # sent from being sent again, and this sender what it knows and the ledger not.
            self._unconfirmed.keep(report.outcomes)
            log.error("command.publish_failed", error=repr(error)[:500])
            await asyncio.sleep(self._failure_pause)
            await self._requeue(message)
            return
        if not await _settle(message.ack()):
            # The event went out, but the command comes back before the ledger may know.
            self._unconfirmed.keep(report.outcomes, published=True)
        log.debug("command.done", outcomes=len(report.outcomes))

    async def _republish_unconfirmed(self, stop: asyncio.Event) -> None:
        """Publish kept outcomes once the broker is back (the robust connection reconnects),
        so that the ledger learns of them even when their command goes to another sender."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._republish_interval)
            outcomes = self._unconfirmed.unpublished()
            if outcomes:
                try:
                    async with asyncio.timeout(self._publish_timeout):
                        await self._publish_status(
                            MessagesProgressed.model_validate({"outcomes": outcomes}), None
                        )
                except BROKER_ERRORS as error:
                    log.warning("outcomes.republish_failed", error=repr(error)[:500])
                else:
                    self._unconfirmed.published(outcomes)
                    log.info("outcomes.republished", count=len(outcomes))
            if stop.is_set():
                return

    async def _publish_status(self, event: MessagesProgressed, correlation_id: str | None) -> None:
        assert self._topology is not None
        await publish(
            self._topology.status,
            to_message(event, message_id=str(event.id), correlation_id=correlation_id),
            STATUS_ROUTING_KEY,
        )

    def _holding_back(self) -> bool:
        return self._stopping or self._breaker.is_open

    async def _publish(
        self,
        report: CommandReport,
        mailing_id: int,
        correlation_id: str | None,
        token: uuid.UUID | None,
    ) -> None:
        """One status event and one deferred command per delay tier, all confirmed."""
        assert self._topology is not None
        publications = []
        event = report.status_event(correlation_id)
        if event is not None:
            publications.append(self._publish_status(event, correlation_id))
        deferred = report.deferred_commands(mailing_id, correlation_id, token)
        for tier, command in deferred:
            publications.append(
                publish(
                    self._topology.retry,
                    to_message(command, message_id=str(command.id), correlation_id=correlation_id),
                    tier.name,
                )
            )
        await asyncio.gather(*publications)
        for tier, command in deferred:
            # Counted per message: a retry is a message's, whatever command carries it.
            RETRIES_SCHEDULED.labels(tier=tier.name).inc(len(command.messages))

    async def _requeue(self, message: AbstractIncomingMessage) -> None:
        await _settle(message.nack(requeue=True))

    def _on_circuit_change(self, state: CircuitState) -> None:
        if state is CircuitState.open:
            self._circuit_opened.set()

    async def _follow_circuit(self, stop: asyncio.Event) -> None:
        """While the circuit is open, take no commands; after the cool-down, half-open it."""
        while True:
            await self._circuit_opened.wait()
            self._circuit_opened.clear()
            if stop.is_set():
                return
            await self._stop_consuming()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._breaker.cooldown)
            if stop.is_set():
                return
            self._breaker.half_open()
            await self._start_consuming()

    async def _start_consuming(self) -> None:
        async with self._consuming_lock:
            if self._consumer_tag is not None or self._stopping or self._queue is None:
                return
            self._consumer_tag = await self._queue.consume(self._on_command)
            log.info("sender.consuming")

    async def _stop_consuming(self) -> None:
        async with self._consuming_lock:
            if self._consumer_tag is None or self._queue is None:
                return
            tag, self._consumer_tag = self._consumer_tag, None
            try:
                await self._queue.cancel(tag)
            except BROKER_ERRORS as error:
                log.warning("sender.cancel_failed", error=repr(error))
            log.info("sender.paused")

    async def _drain(self) -> None:
        if not self._handling:
            return
        _, unfinished = await asyncio.wait(set(self._handling), timeout=self._drain_seconds)
        if unfinished:
            log.warning("sender.drain_timeout", commands=len(unfinished))
            for task in unfinished:
                task.cancel()
            await asyncio.wait(unfinished, timeout=1.0)


def _returned(message: AbstractIncomingMessage) -> Callable[[], bool]:
    """Whether the command's channel has closed, so that RabbitMQ hands it out again."""

    def returned() -> bool:
        try:
            return message.channel.is_closed
        except ChannelInvalidStateError:
            return True

    return returned


async def _settle(settlement: Awaitable[None]) -> bool:
    """Ack, nack or reject; on a dead channel RabbitMQ redelivers the command by itself."""
    try:
        await settlement
    except BROKER_ERRORS as error:
        log.warning("command.settle_failed", error=repr(error))
        return False
    return True


async def _close(channel: AbstractChannel) -> None:
    with contextlib.suppress(*BROKER_ERRORS):
        await channel.close()
