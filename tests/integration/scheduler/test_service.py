"""The whole scheduler in-process against the test vhost, with the test playing the sender."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.broker.connection import publish, to_message
from herald_common.broker.topology import (
    SCHEDULER_EVENTS_QUEUE,
    SEND_COMMANDS_QUEUE,
    STATUS_EVENTS_QUEUE,
    STATUS_ROUTING_KEY,
)
from herald_common.contracts import (
    EventType,
    MailingChanged,
    MessageOutcome,
    MessagesProgressed,
    SendMessages,
)
from herald_common.domain import MessageStatus
from herald_common.settings import HeraldSettings
from herald_scheduler.repository.ledger import MAILING_ENDED
from herald_scheduler.service import run_scheduler
from herald_scheduler.settings import ScheduleSettings
from tests.integration.scheduler.conftest import Broker
from tests.integration.scheduler.factories import (
    create_client,
    create_clients,
    create_mailing,
    messages_of,
    utc_now,
)


async def eventually(check: Callable[[], Coroutine[Any, Any, bool]], within: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
def scheduler_settings(settings: HeraldSettings) -> ScheduleSettings:
    return ScheduleSettings(
        database_url=settings.database_url,
        amqp_url=settings.amqp_url,
        log_format="json",
        dispatch_interval=0.05,
        reconcile_interval=0.3,
        sweep_interval=0.2,
        materialise_chunk_size=2,
        send_batch_size=2,
        scheduler_metrics_port=0,
    )


class FakeSender:
    """Plays the sender: takes commands, reports `sent` for the mailings it is told to serve."""

    def __init__(self, broker: Broker, serves: set[int]) -> None:
        self.broker = broker
        self.serves = serves
        self.commands: list[SendMessages] = []

    async def run(self) -> None:
        queue = await self.broker.channel.get_queue(SEND_COMMANDS_QUEUE)
        while True:
            message = await queue.get(no_ack=True, fail=False)
            # Python 3.11's wait_for (inside aio-pika's get) can swallow a cancellation that
            # lands just as the answer arrives: honour it, or the teardown waits forever.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise asyncio.CancelledError
            if message is None:
                await asyncio.sleep(0.02)
                continue
            command = SendMessages.model_validate_json(message.body)
            self.commands.append(command)
            if command.mailing_id not in self.serves:
                continue  # never answered: these messages stay queued until the end
            progressed = MessagesProgressed(
                correlation_id=command.correlation_id,
                outcomes=[
                    MessageOutcome(
                        message_id=ref.id,
                        mailing_id=command.mailing_id,
                        status=MessageStatus.sent,
                        attempts=ref.attempts + 1,
                        at=utc_now(),
                    )
                    for ref in command.messages
                ],
            )
            await publish(
                self.broker.topology.status,
                to_message(progressed, message_id=str(progressed.id), correlation_id=None),
                STATUS_ROUTING_KEY,
            )


@pytest.fixture
async def fake_sender_task(broker: Broker) -> AsyncIterator[Callable[[set[int]], FakeSender]]:
    tasks: list[asyncio.Task[None]] = []

    def start(serves: set[int]) -> FakeSender:
        sender = FakeSender(broker, serves)
        tasks.append(asyncio.create_task(sender.run()))
        return sender

    yield start
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_scheduler_sends_expires_and_stops_on_cancellation(
    ledger_db: AsyncEngine,
    broker: Broker,
    scheduler_settings: ScheduleSettings,
    fake_sender_task: Callable[[set[int]], FakeSender],
) -> None:
    served_clients = await create_clients(ledger_db, 5, operator_code="912")
    await create_client(ledger_db, operator_code="999")
    served = await create_mailing(ledger_db, operator_codes=["912"], correlation_id="corr-served")
    # No event is ever published for this one: the catch-up loop must find it.
    ending = await create_mailing(ledger_db, end_at=utc_now() + timedelta(seconds=2))
    sender = fake_sender_task({served})

    service = asyncio.create_task(run_scheduler(scheduler_settings, asyncio.Event()))
    try:
        event = MailingChanged(
            type=EventType.mailing_created,
            mailing_id=served,
            revision=1,
            correlation_id="corr-served",
        )
        await publish(
            broker.topology.events,
            to_message(event, message_id=str(event.id), correlation_id=event.correlation_id),
            event.type.value,
        )

        async def served_all_sent() -> bool:
            rows = await messages_of(ledger_db, served)
            return len(rows) == 5 and {m.status for m in rows} == {"sent"}

        async def ending_all_expired() -> bool:
            rows = await messages_of(ledger_db, ending)
            return len(rows) == 6 and {m.status for m in rows} == {"expired"}

        await eventually(served_all_sent)
        await eventually(ending_all_expired)
    finally:
        service.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(service, timeout=5)
    assert service.cancelled()

    rows = await messages_of(ledger_db, served)
    assert sorted(m.client_id for m in rows) == served_clients
    assert all(m.attempts == 1 and m.sent_at is not None for m in rows)
    served_commands = [c for c in sender.commands if c.mailing_id == served]
    assert sorted(r.id for c in served_commands for r in c.messages) == sorted(m.id for m in rows)
    assert all(len(c.messages) <= 2 and c.correlation_id == "corr-served" for c in served_commands)
    ended = await messages_of(ledger_db, ending)
    assert {m.last_error for m in ended} == {MAILING_ENDED}
    assert await broker.queue_depth(STATUS_EVENTS_QUEUE) == 0


async def test_scheduler_stops_when_asked_and_leaves_nothing_unacked(
    ledger_db: AsyncEngine, broker: Broker, scheduler_settings: ScheduleSettings
) -> None:
    stopping = asyncio.Event()
    service = asyncio.create_task(run_scheduler(scheduler_settings, stopping))
    mailing_id = await create_mailing(ledger_db)
    await create_clients(ledger_db, 2)
    event = MailingChanged(type=EventType.mailing_created, mailing_id=mailing_id, revision=1)
    await publish(
        broker.topology.events,
        to_message(event, message_id=str(event.id), correlation_id=None),
        event.type.value,
    )

    async def queued() -> bool:
        rows = await messages_of(ledger_db, mailing_id)
        return len(rows) == 2 and {m.status for m in rows} == {"queued"}

    await eventually(queued)
    stopping.set()
    await asyncio.wait_for(service, timeout=10)

    assert service.exception() is None
    assert await broker.queue_depth(SCHEDULER_EVENTS_QUEUE) == 0
    assert await broker.queue_depth(SEND_COMMANDS_QUEUE) == 1  # one command of two messages


@pytest.mark.parametrize("outage", ["database", "broker"])
async def test_scheduler_rides_out_an_unreachable_dependency_and_still_stops(
    ledger_db: AsyncEngine, scheduler_settings: ScheduleSettings, outage: str
) -> None:
    # Port 9 (discard) on loopback: nothing listens, connections are refused at once.
    dead = {
        "database": {"database_url": "postgresql+psycopg://postgres@127.0.0.1:9/herald"},
        "broker": {"amqp_url": "amqp://guest:guest@127.0.0.1:9/"},
    }[outage]
    settings = scheduler_settings.model_copy(update=dead)
    stopping = asyncio.Event()
    service = asyncio.create_task(run_scheduler(settings, stopping))

    await asyncio.sleep(1.5)
    assert not service.done()  # still retrying, not crashed

    stopping.set()
    await asyncio.wait_for(service, timeout=10)
    assert service.exception() is None
