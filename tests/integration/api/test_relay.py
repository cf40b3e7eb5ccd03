"""The relay publishes committed outbox rows to herald.events, with the correlation header."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.broker.connection import CORRELATION_HEADER
from herald_common.broker.topology import SCHEDULER_EVENTS_QUEUE, declare_topology
from herald_common.settings import HeraldSettings
from tests.integration.api.factories import client_body, mailing_body, outbox_rows

WAIT_SECONDS = 10.0


@pytest.fixture
async def scheduler_events(settings: HeraldSettings) -> AsyncIterator[AbstractQueue]:
    """The scheduler's event queue in this run's vhost, emptied first."""
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        await declare_topology(channel, settings.queue_type)
        queue = await channel.get_queue(SCHEDULER_EVENTS_QUEUE)
        await queue.purge()
        yield queue


async def _receive(queue: AbstractQueue, message_id: str) -> AbstractIncomingMessage:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while asyncio.get_running_loop().time() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.05)
        elif message.message_id == message_id:
            return message
    raise AssertionError(f"event {message_id} was not published within {WAIT_SECONDS}s")


async def _marked_published(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    """The relay marks rows after the broker's confirm and its commit: wait for that."""
    for _ in range(int(WAIT_SECONDS / 0.05)):
        if all(row.published_at is not None for row in await outbox_rows(sessionmaker)):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_mailing_change_reaches_the_scheduler_queue_with_its_correlation_id(
    api: httpx.AsyncClient,
    scheduler_events: AbstractQueue,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    correlation_id = uuid.uuid4().hex
    mailing_id = (
        await api.post(
            "/api/v1/mailings", json=mailing_body(), headers={"X-Correlation-ID": correlation_id}
        )
    ).json()["id"]
    [row] = await outbox_rows(sessionmaker)

    message = await _receive(scheduler_events, str(row.event_id))

    assert message.routing_key == "mailing.created"
    assert message.headers[CORRELATION_HEADER] == correlation_id
    assert message.correlation_id == correlation_id
    body = json.loads(message.body)
    assert body["mailing_id"] == mailing_id
    assert body["type"] == "mailing.created"
    assert body["id"] == str(row.event_id)
    assert await _marked_published(sessionmaker)


async def test_every_change_is_published_in_order(
    api: httpx.AsyncClient,
    scheduler_events: AbstractQueue,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    client_id = (await api.post("/api/v1/clients", json=client_body())).json()["id"]
    await api.patch(f"/api/v1/clients/{client_id}", json={"tag": "x"})
    await api.delete(f"/api/v1/clients/{client_id}")
    rows = await outbox_rows(sessionmaker)

    received = [await _receive(scheduler_events, str(row.event_id)) for row in rows]

    assert [message.routing_key for message in received] == [
        "client.created",
        "client.updated",
        "client.deleted",
    ]
    assert all(json.loads(message.body)["client_ids"] == [client_id] for message in received)
