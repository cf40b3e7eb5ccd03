"""The broker topology: idempotent declaration, routing, delay tiers and the dead-letter queue,
for both queue types."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aio_pika
import pytest
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)

from herald_common.broker import topology
from herald_common.settings import QueueType
from tests.conftest import RUN_ID, fresh_vhost


@dataclass
class Broker:
    connection: AbstractConnection
    channel: AbstractChannel
    queue_type: QueueType


@pytest.fixture(scope="module", params=[QueueType.classic, QueueType.quorum])
async def broker(request: pytest.FixtureRequest, amqp_server_url: str) -> AsyncIterator[Broker]:
    queue_type: QueueType = request.param
    with fresh_vhost(amqp_server_url, f"herald-test-{RUN_ID}-{queue_type.value}") as url:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await topology.declare_topology(channel, queue_type)
            yield Broker(connection, channel, queue_type)


async def get_one(queue: AbstractQueue, within: float = 10) -> AbstractIncomingMessage:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        message = await queue.get(fail=False, no_ack=True)
        if message is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing arrived in {queue.name} within {within}s")


async def test_declaring_twice_is_harmless_and_queues_have_the_type(
    broker: Broker,
) -> None:
    chan, queue_type = broker.channel, broker.queue_type
    await topology.declare_topology(chan, queue_type)
    queue = await chan.declare_queue(topology.SEND_COMMANDS_QUEUE, passive=True)
    assert queue.name == topology.SEND_COMMANDS_QUEUE
    # Redeclaring with the other type must fail: proves the declared type is the setting's.
    other = QueueType.quorum if queue_type is QueueType.classic else QueueType.classic
    same_arguments_but_type = {
        **topology.queue_arguments(queue_type, {"x-dead-letter-exchange": topology.DEAD_EXCHANGE}),
        "x-queue-type": other.value,
    }
    fresh = await broker.connection.channel()
    with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed, match="x-queue-type"):
        await fresh.declare_queue(
            topology.SEND_COMMANDS_QUEUE, durable=True, arguments=same_arguments_but_type
        )


async def test_events_route_to_scheduler_queue(broker: Broker) -> None:
    chan = broker.channel
    events = await chan.get_exchange(topology.EVENTS_EXCHANGE)
    queue = await chan.declare_queue(topology.SCHEDULER_EVENTS_QUEUE, passive=True)
    await queue.purge()
    for key in ("mailing.created", "client.deleted"):
        await events.publish(aio_pika.Message(key.encode()), routing_key=key, mandatory=True)
    bodies = {(await get_one(queue)).body, (await get_one(queue)).body}
    assert bodies == {b"mailing.created", b"client.deleted"}


async def test_retry_tier_dead_letters_back_to_commands(
    broker: Broker,
) -> None:
    chan = broker.channel
    retry = await chan.get_exchange(topology.RETRY_EXCHANGE)
    commands = await chan.declare_queue(topology.SEND_COMMANDS_QUEUE, passive=True)
    await commands.purge()
    tier = topology.RETRY_TIERS[0]
    started = asyncio.get_running_loop().time()
    await retry.publish(aio_pika.Message(b"deferred"), routing_key=tier.name, mandatory=True)
    message = await get_one(commands, within=tier.seconds + 10)
    waited = asyncio.get_running_loop().time() - started
    assert message.body == b"deferred"
    assert waited >= tier.seconds - 0.5


async def test_rejected_command_lands_in_dead_letter_queue(
    broker: Broker,
) -> None:
    chan = broker.channel
    send = await chan.get_exchange(topology.SEND_EXCHANGE)
    commands = await chan.declare_queue(topology.SEND_COMMANDS_QUEUE, passive=True)
    dead = await chan.declare_queue(topology.DEAD_LETTER_QUEUE, passive=True)
    await commands.purge()
    await dead.purge()
    await send.publish(
        aio_pika.Message(b"poison"), routing_key=topology.SEND_ROUTING_KEY, mandatory=True
    )
    message = await commands.get(timeout=5, no_ack=False)
    await message.reject(requeue=False)
    assert (await get_one(dead)).body == b"poison"


def test_retry_tier_choice() -> None:
    assert topology.longest_tier_within(1).name == "5s"
    assert topology.longest_tier_within(45).name == "30s"
    assert topology.longest_tier_within(3600).name == "10m"
