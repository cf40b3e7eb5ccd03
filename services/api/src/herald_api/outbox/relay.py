"""Publishes outbox rows to ``herald.events`` with publisher confirms, then marks them.

Runs as a background task of the api. The request path wakes it right after a
commit that wrote outbox rows; a sweep every ``interval`` seconds catches anything
left over (broker down, another replica crashed mid-batch). Rows are claimed with
``FOR UPDATE SKIP LOCKED``, so several api replicas never publish the same row at
once; a crash between publish and commit republishes, which is harmless: an event
only says what changed, and its consumer reads the current state.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.outbox import repository
from herald_common.broker.connection import connect, publish, to_message
from herald_common.broker.topology import declare_topology
from herald_common.contracts import domain_event_adapter
from herald_common.db.models import OutboxEvent
from herald_common.metrics import OUTBOX_BACKLOG
from herald_common.runtime import Backoff, wait_any
from herald_common.settings import QueueType

log = structlog.get_logger()

BATCH_SIZE = 500
MAX_BACKOFF_SECONDS = 30.0
PUBLISH_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 10.0
PURGE_EVERY_SECONDS = 600.0
PURGE_AFTER = timedelta(days=1)
PURGE_BATCH = 10_000

Connect = Callable[[str, str], Awaitable[AbstractRobustConnection]]


class OutboxRelay:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        amqp_url: str,
        queue_type: QueueType,
        *,
        interval: float = 1.0,
        connect_broker: Connect = connect,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._amqp_url = amqp_url
        self._queue_type = queue_type
        self._interval = interval
        self._connect_broker = connect_broker
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._last_purge = -PURGE_EVERY_SECONDS
        self._last_backlog = -interval

    @property
    def broker_connected(self) -> bool:
        connection = self._connection
        return (
            connection is not None
            and not connection.is_closed
            and connection.connected.is_set()
            and self._channel is not None
            and not self._channel.is_closed
        )

    def wake(self) -> None:
        """Publish now: a transaction that wrote outbox rows has just committed."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Publish until stopped; broker or database failures back off and retry."""
        failures = 0
        backoff = Backoff(initial=self._interval, cap=MAX_BACKOFF_SECONDS)
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    await self._ensure_channel()
                    await self.publish_pending()
                    await self._housekeeping()
                except (Exception, asyncio.CancelledError) as exc:
                    if isinstance(exc, asyncio.CancelledError) and _cancelling():
                        raise
                    # Anything else, including a CancelledError leaking from a dropped
                    # channel, is one more failure to back off from: the relay never dies.
                    failures += 1
                    await self._back_off(exc, failures, backoff.next_delay())
                    continue
                if failures:
                    log.info("outbox.relay_recovered", after_failures=failures)
                    failures = 0
                    backoff.reset()
                await wait_any(self._stop, self._wake, within=self._interval)
        finally:
            await self._close()

    async def _back_off(self, exc: BaseException, failures: int, delay: float) -> None:
        log.warning(
            "outbox.relay_failed",
            error=f"{type(exc).__name__}: {exc}",
            failures=failures,
            retry_in_s=round(delay, 2),
        )
        # Requests keep waking the relay while the broker is down; only stop cuts this short.
        await wait_any(self._stop, within=delay)

    async def publish_pending(self) -> int:
        """Publish every unpublished row, batch after batch; how many were published."""
        total = 0
        while True:
            published, claimed = await self._publish_batch()
            total += published
            if claimed < BATCH_SIZE:
                return total

    async def _publish_batch(self) -> tuple[int, int]:
        exchange = self._exchange
        assert exchange is not None, "_ensure_channel runs first"
        failure: BaseException | None = None
        async with self._sessionmaker() as session, session.begin():
            rows = await repository.claim_unpublished(session, BATCH_SIZE)
            if not rows:
                return 0, 0
            outcomes = await asyncio.wait_for(
                asyncio.gather(
                    *(_publish_row(exchange, row) for row in rows), return_exceptions=True
                ),
                PUBLISH_TIMEOUT_SECONDS,
            )
            done = [row.id for row, outcome in zip(rows, outcomes, strict=True) if outcome is None]
            failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
            await repository.mark_published(session, done)
        if done:
            log.debug("outbox.published", count=len(done))
        if failure is not None:
            raise failure
        return len(done), len(rows)

    async def _ensure_channel(self) -> None:
        if self._connection is None:
            # A failed first connect raises; connect_robust only reconnects once it has connected.
            self._connection = await asyncio.wait_for(
                self._connect_broker(self._amqp_url, "herald-api"), CONNECT_TIMEOUT_SECONDS
            )
            log.info("outbox.broker_connected")
        if not self._connection.connected.is_set():
            raise ConnectionError("the broker connection is down; it is reconnecting by itself")
        if self._channel is None or self._channel.is_closed:
            # A robust channel reopens itself after a reconnect; this covers one that was not.
            await asyncio.wait_for(self._open_channel(self._connection), CONNECT_TIMEOUT_SECONDS)

    async def _open_channel(self, connection: AbstractRobustConnection) -> None:
        # on_return_raises: an unroutable event is an error to retry, not a silent drop.
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        topology = await declare_topology(channel, self._queue_type)
        self._channel, self._exchange = channel, topology.events

    async def _housekeeping(self) -> None:
        """Refresh the backlog gauge (at most once per interval) and purge now and then."""
        now = time.monotonic()
        if now - self._last_backlog < self._interval:
            return
        self._last_backlog = now
        async with self._sessionmaker() as session, session.begin():
            OUTBOX_BACKLOG.set(await repository.backlog(session))
            if now - self._last_purge >= PURGE_EVERY_SECONDS:
                self._last_purge = now
                purged = await repository.purge_published(session, PURGE_AFTER, PURGE_BATCH)
                if purged:
                    log.info("outbox.purged", count=purged)

    async def _close(self) -> None:
        connection, self._connection, self._channel, self._exchange = (
            self._connection,
            None,
            None,
            None,
        )
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), 5)
            except Exception as exc:  # closing a dead connection must not fail shutdown
                log.warning("outbox.broker_close_failed", error=f"{type(exc).__name__}: {exc}")


async def _publish_row(exchange: AbstractExchange, row: OutboxEvent) -> None:
    try:
        envelope = domain_event_adapter.validate_python(row.payload)
    except ValidationError as exc:
        # A row no consumer could read must not block every row behind it.
        log.error("outbox.poison_row", outbox_id=row.id, error=str(exc))
        return
    message = to_message(envelope, message_id=str(row.event_id), correlation_id=row.correlation_id)
    await publish(exchange, message, routing_key=row.event_type)


def _cancelling() -> bool:
    """Whether this task itself is being cancelled (as opposed to a child's cancellation)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0
