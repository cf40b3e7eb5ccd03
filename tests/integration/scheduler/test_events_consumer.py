"""Domain events drive reconciliation; duplicate and stale events change nothing."""

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aio_pika
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.broker.connection import publish, to_message
from herald_common.broker.topology import DEAD_LETTER_QUEUE, SCHEDULER_EVENTS_QUEUE
from herald_common.contracts import ClientsChanged, EventType, MailingChanged
from herald_scheduler.events import DomainEventConsumer
from herald_scheduler.reconciler import Reconciler
from herald_scheduler.repository.ledger import CLIENT_DELETED, MAILING_CANCELLED
from tests.integration.scheduler.conftest import Broker
from tests.integration.scheduler.factories import (
    cancel_mailing,
    create_client,
    create_clients,
    create_mailing,
    delete_client,
    messages_of,
    reconciled_revision,
    update_mailing,
)


async def eventually(check: Callable[[], Coroutine[Any, Any, bool]], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def consumer(reconciler: Reconciler, broker: Broker) -> AsyncIterator[None]:
    channel = await broker.connection.channel()
    await channel.set_qos(prefetch_count=32)
    queue = await channel.get_queue(SCHEDULER_EVENTS_QUEUE)
    stopping = asyncio.Event()
    task = asyncio.create_task(DomainEventConsumer(reconciler, concurrency=2).run(queue, stopping))
    yield
    stopping.set()
    await asyncio.wait_for(task, timeout=5)
    assert task.exception() is None
    await channel.close()


async def send(broker: Broker, event: MailingChanged | ClientsChanged) -> None:
    message = to_message(event, message_id=str(event.id), correlation_id=event.correlation_id)
    await publish(broker.topology.events, message, event.type.value)


async def drained(broker: Broker) -> None:
    async def empty() -> bool:
        return await broker.queue_depth(SCHEDULER_EVENTS_QUEUE) == 0

    await eventually(empty)


async def snapshot(engine: AsyncEngine, mailing_id: int) -> list[tuple[object, ...]]:
    return [
        (m.id, m.client_id, m.status, m.due_at, m.updated_at)
        for m in await messages_of(engine, mailing_id)
    ]


@pytest.mark.usefixtures("consumer")
async def test_mailing_events_materialise_and_duplicates_or_stale_ones_change_nothing(
    ledger_db: AsyncEngine, broker: Broker
) -> None:
    client_ids = await create_clients(ledger_db, 4)
    mailing_id = await create_mailing(ledger_db)
    created = MailingChanged(
        type=EventType.mailing_created, mailing_id=mailing_id, revision=1, correlation_id="c-1"
    )
    await send(broker, created)

    async def materialised() -> bool:
        return await reconciled_revision(ledger_db, mailing_id) == 1

    await eventually(materialised)
    assert sorted(m.client_id for m in await messages_of(ledger_db, mailing_id)) == client_ids
    before = await snapshot(ledger_db, mailing_id)

    await send(broker, created)  # a duplicate delivery
    revision = await update_mailing(ledger_db, mailing_id, text="Changed text")
    await send(
        broker,
        MailingChanged(type=EventType.mailing_updated, mailing_id=mailing_id, revision=revision),
    )
    await send(broker, created)  # late: older than the update
    await drained(broker)

    await eventually(materialised_at(ledger_db, mailing_id, revision))
    assert await snapshot(ledger_db, mailing_id) == before


def materialised_at(
    engine: AsyncEngine, mailing_id: int, revision: int
) -> Callable[[], Coroutine[Any, Any, bool]]:
    async def check() -> bool:
        return await reconciled_revision(engine, mailing_id) == revision

    return check


@pytest.mark.usefixtures("consumer")
async def test_mailing_deleted_cancels_its_unsent_messages(
    ledger_db: AsyncEngine, broker: Broker, reconciler: Reconciler
) -> None:
    await create_clients(ledger_db, 3)
    mailing_id = await create_mailing(ledger_db)
    await reconciler.reconcile_mailing(mailing_id)
    revision = await cancel_mailing(ledger_db, mailing_id)

    await send(
        broker,
        MailingChanged(type=EventType.mailing_deleted, mailing_id=mailing_id, revision=revision),
    )

    await eventually(materialised_at(ledger_db, mailing_id, revision))
    rows = await messages_of(ledger_db, mailing_id)
    assert {(m.status, m.last_error) for m in rows} == {("cancelled", MAILING_CANCELLED)}


@pytest.mark.usefixtures("consumer")
async def test_client_events_add_and_cancel_messages_of_running_mailings(
    ledger_db: AsyncEngine, broker: Broker, reconciler: Reconciler
) -> None:
    mailing_id = await create_mailing(ledger_db)
    await reconciler.reconcile_mailing(mailing_id)
    joining = await create_client(ledger_db)
    await send(broker, ClientsChanged(type=EventType.client_created, client_ids=[joining]))

    async def joined() -> bool:
        return [m.client_id for m in await messages_of(ledger_db, mailing_id)] == [joining]

    await eventually(joined)

    await delete_client(ledger_db, joining)
    await send(broker, ClientsChanged(type=EventType.client_deleted, client_ids=[joining]))

    async def cancelled() -> bool:
        return [(m.status, m.last_error) for m in await messages_of(ledger_db, mailing_id)] == [
            ("cancelled", CLIENT_DELETED)
        ]

    await eventually(cancelled)


@pytest.mark.usefixtures("consumer")
async def test_unparseable_event_goes_to_the_dead_letter_queue(
    ledger_db: AsyncEngine, broker: Broker
) -> None:
    await broker.topology.events.publish(
        aio_pika.Message(b'{"type": "mailing.created", "mailing_id": "x"}'),
        routing_key="mailing.created",
    )

    async def dead_lettered() -> bool:
        return await broker.queue_depth(DEAD_LETTER_QUEUE) == 1

    await eventually(dead_lettered)
    await drained(broker)
