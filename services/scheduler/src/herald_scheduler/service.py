"""The scheduler process: one engine, one robust broker connection, seven loops in one
TaskGroup.

Loops: domain events -> reconcile; dispatcher; outcome writer (status events); expiry
sweeper; catch-up reconcile of mailings; catch-up of clients (their journal); the status
counts (message counts by status, for the metrics). Setting
``stopping`` makes each finish its current batch and return.
"""

import asyncio

import structlog
from aio_pika.abc import AbstractQueue, AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.broker.connection import connect
from herald_common.broker.topology import (
    SCHEDULER_EVENTS_QUEUE,
    STATUS_EVENTS_QUEUE,
    Topology,
    declare_topology,
)
from herald_common.db.engine import create_engine, create_sessionmaker
from herald_common.faults import FAULTS, describe
from herald_common.runtime import Backoff, wait_any
from herald_scheduler import events, outcomes, status_counts
from herald_scheduler.client_catch_up import ClientJournalReconciler, run_client_catch_up
from herald_scheduler.dispatcher import Dispatcher
from herald_scheduler.events import DomainEventConsumer
from herald_scheduler.outcomes import OutcomeWriter
from herald_scheduler.reconciler import run_catch_up
from herald_scheduler.settings import ScheduleSettings
from herald_scheduler.sweeper import Sweeper

SERVICE = "scheduler"
# A reconcile holds two connections (its lock's and its step's); the event handlers and
# the catch-up loop reconcile; the dispatcher, ledger writer, sweeper and ledger gauge
# hold one each.
_CONNECTIONS_PER_RECONCILE = 2
_LOOP_CONNECTIONS = 4

log = structlog.get_logger()


async def run_scheduler(settings: ScheduleSettings, stopping: asyncio.Event) -> None:
    """Run every loop until ``stopping`` is set (or the task is cancelled)."""
    # The event handlers, the mailing catch-up and the client catch-up reconcile.
    reconciles = settings.event_concurrency + 2
    engine = create_engine(
        settings,
        pool_size=max(
            settings.db_pool_size, reconciles * _CONNECTIONS_PER_RECONCILE + _LOOP_CONNECTIONS
        ),
    )
    try:
        connection = await _connect_until_up(settings.amqp_url, stopping)
        if connection is None:
            return
        try:
            await _run_loops(settings, engine, connection, stopping)
        finally:
            await connection.close()
    finally:
        await engine.dispose()


async def _connect_until_up(
    amqp_url: str, stopping: asyncio.Event
) -> AbstractRobustConnection | None:
    """A robust connection. The first connect is retried here; later ones happen by themselves."""
    backoff = Backoff(cap=10.0)
    while not stopping.is_set():
        try:
            return await connect(amqp_url, SERVICE)
        except FAULTS as error:
            pause = backoff.next_delay()
            log.warning("broker.unreachable", error=describe(error), retry_in=round(pause, 2))
            await wait_any(stopping, within=pause)
    return None


class _Channels:
    def __init__(self, events: AbstractQueue, status: AbstractQueue, topology: Topology) -> None:
        self.events = events
        self.status = status
        self.topology = topology

    async def status_backlog(self) -> int:
        """Status events waiting in the broker (not counting those the writer holds)."""
        declared = await self.status.declare(timeout=5)
        return declared.message_count or 0


async def _open_channels(
    connection: AbstractRobustConnection, settings: ScheduleSettings
) -> _Channels:
    # One channel per consumer, each with its own prefetch; each declares the topology so
    # that it can restore it after a broker restart.
    events_channel = await connection.channel()
    await events_channel.set_qos(prefetch_count=events.PREFETCH)
    await declare_topology(events_channel, settings.queue_type)
    status_channel = await connection.channel()
    await status_channel.set_qos(prefetch_count=outcomes.PREFETCH)
    await declare_topology(status_channel, settings.queue_type)
    # Unroutable commands must fail the dispatch instead of vanishing.
    send_channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    topology = await declare_topology(send_channel, settings.queue_type)
    return _Channels(
        events=await events_channel.get_queue(SCHEDULER_EVENTS_QUEUE),
        status=await status_channel.get_queue(STATUS_EVENTS_QUEUE),
        topology=topology,
    )


async def _run_loops(
    settings: ScheduleSettings,
    engine: AsyncEngine,
    connection: AbstractRobustConnection,
    stopping: asyncio.Event,
) -> None:
    backoff = Backoff(cap=10.0)
    while True:
        try:
            channels = await _open_channels(connection, settings)
            break
        except FAULTS as error:
            pause = backoff.next_delay()
            log.warning("broker.setup_failed", error=describe(error), retry_in=round(pause, 2))
            if await wait_any(stopping, within=pause):
                return

    sessionmaker = create_sessionmaker(engine)
    dispatch_wakeup = asyncio.Event()
    # Clears the client journal after each clients reconcile (see client_catch_up).
    reconciler = ClientJournalReconciler(
        engine,
        chunk_size=settings.materialise_chunk_size,
        on_materialised=dispatch_wakeup.set,
    )
    consumer = DomainEventConsumer(reconciler, concurrency=settings.event_concurrency)
    dispatcher = Dispatcher(
        sessionmaker,
        channels.topology.send,
        claim=settings.dispatch_claim,
        batch_size=settings.send_batch_size,
        interval=settings.dispatch_interval,
        wakeup=dispatch_wakeup,
        lease_seconds=settings.dispatch_lease,
        max_queued=settings.dispatch_max_queued,
    )
    writer = OutcomeWriter(
        sessionmaker,
        batch_size=settings.ledger_batch_size,
        batch_wait=settings.ledger_batch_wait,
        lease_seconds=settings.dispatch_lease,
    )
    sweeper = Sweeper(sessionmaker, status_backlog=channels.status_backlog)
    log.info("scheduler.running")
    async with asyncio.TaskGroup() as group:
        group.create_task(consumer.run(channels.events, stopping))
        group.create_task(writer.run(channels.status, stopping))
        group.create_task(dispatcher.run(stopping))
        group.create_task(sweeper.run(stopping, settings.sweep_interval))
        group.create_task(run_catch_up(reconciler, stopping, settings.reconcile_interval))
        group.create_task(run_client_catch_up(reconciler, stopping, settings.reconcile_interval))
        group.create_task(status_counts.run(sessionmaker, stopping))
    log.info("scheduler.stopped")
