"""herald.dead listed and replayed on a real RabbitMQ, for both queue types: a message a
consumer rejected is listed with where it came from and stays; a replay puts it back on
its queue and takes it out of herald.dead; a dry run and an unknown id change nothing."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue

from herald_common.broker import dead_letters, topology
from herald_common.broker.connection import publish, to_message
from herald_common.contracts import EventType, MailingChanged, MessageRef, SendMessages
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
    name = f"herald-test-{RUN_ID}-dead-{queue_type.value}"
    with fresh_vhost(amqp_server_url, name) as url:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await topology.declare_topology(channel, queue_type)
            yield Broker(connection, channel, queue_type)


@pytest.fixture
async def empty(broker: Broker) -> Broker:
    for name in (topology.DEAD_LETTER_QUEUE, topology.SEND_COMMANDS_QUEUE):
        await (await broker.channel.get_queue(name)).purge()
    await (await broker.channel.get_queue(topology.SCHEDULER_EVENTS_QUEUE)).purge()
    return broker


async def depth(channel: AbstractChannel, name: str, expected: int | None = None) -> int:
    """Ready messages in the queue; with ``expected``, waits a while for that depth
    (dead-lettering and requeueing are asynchronous in the broker)."""
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        queue = await channel.declare_queue(name, passive=True)
        count = queue.declaration_result.message_count or 0
        if expected is None or count == expected or asyncio.get_running_loop().time() > deadline:
            return count
        await asyncio.sleep(0.05)


async def kill(channel: AbstractChannel, queue: AbstractQueue) -> None:
    """A consumer's verdict on a poison message: reject it without requeue."""
    message = await queue.get(timeout=5, no_ack=False)
    assert message is not None
    await message.reject(requeue=False)


async def dead_command(broker: Broker) -> SendMessages:
    """A send command published as the dispatcher does, then rejected by a sender."""
    command = SendMessages(
        mailing_id=7,
        messages=[MessageRef(id=41), MessageRef(id=42)],
        token=uuid.uuid4(),
        correlation_id=f"req-{uuid.uuid4().hex[:6]}",
    )
    send = await broker.channel.get_exchange(topology.SEND_EXCHANGE)
    message = to_message(command, message_id=str(command.id), correlation_id=command.correlation_id)
    await publish(send, message, topology.SEND_ROUTING_KEY)
    await kill(broker.channel, await broker.channel.get_queue(topology.SEND_COMMANDS_QUEUE))
    return command


async def test_list_shows_where_a_letter_died_and_leaves_it(empty: Broker) -> None:
    command = await dead_command(empty)
    await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 1)

    listing = await dead_letters.peek(empty.connection, limit=10)

    assert listing.depth == 1
    [letter] = listing.letters
    assert letter.message_id == str(command.id)
    assert letter.correlation_id == command.correlation_id
    assert letter.type == "send_messages"
    assert letter.death is not None
    assert letter.death.queue == topology.SEND_COMMANDS_QUEUE
    assert letter.death.exchange == topology.SEND_EXCHANGE
    assert letter.death.routing_keys == (topology.SEND_ROUTING_KEY,)
    assert letter.death.reason == "rejected"
    assert letter.death.time is not None
    assert letter.excerpt.startswith('{"mailing_id":7,"messages":[{"id":41,')
    # Left in place, and listed again the same.
    assert await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 1) == 1
    again = await dead_letters.peek(empty.connection, limit=10)
    assert [item.message_id for item in again.letters] == [str(command.id)]


async def test_list_stops_at_the_limit_and_keeps_every_letter(empty: Broker) -> None:
    commands = [await dead_command(empty) for _ in range(3)]
    await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 3)

    first_two = await dead_letters.peek(empty.connection, limit=2)
    every = await dead_letters.peek(empty.connection, limit=10)

    ids = [str(c.id) for c in commands]
    assert first_two.depth == 3
    assert [letter.message_id for letter in first_two.letters] == ids[:2]
    if empty.queue_type is QueueType.classic:
        assert [letter.message_id for letter in every.letters] == ids
    else:
        # A quorum queue may put what is handed back behind the rest (3.10 does).
        assert sorted(letter.message_id or "" for letter in every.letters) == sorted(ids)
    assert await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 3) == 3


async def test_replay_puts_a_letter_back_on_its_queue(empty: Broker) -> None:
    command = await dead_command(empty)
    await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 1)

    result = await dead_letters.replay(empty.connection)

    assert [letter.message_id for letter in result.replayed] == [str(command.id)]
    assert result.left == []
    assert await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 0) == 0
    commands = await empty.channel.get_queue(topology.SEND_COMMANDS_QUEUE)
    back = await commands.get(timeout=5, no_ack=True)
    assert back is not None
    assert SendMessages.model_validate_json(back.body) == command
    assert back.message_id == str(command.id)
    assert back.correlation_id == command.correlation_id
    assert back.delivery_mode == aio_pika.DeliveryMode.PERSISTENT


async def test_a_replayed_letter_that_dies_again_shows_it(empty: Broker) -> None:
    await dead_command(empty)
    await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 1)
    await dead_letters.replay(empty.connection)
    await kill(empty.channel, await empty.channel.get_queue(topology.SEND_COMMANDS_QUEUE))
    await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 1)

    [letter] = (await dead_letters.peek(empty.connection, limit=10)).letters

    assert letter.death is not None
    assert letter.death.count == 2


async def test_an_event_goes_back_through_its_topic_with_its_routing_key(empty: Broker) -> None:
    event = MailingChanged(type=EventType.mailing_created, mailing_id=3, revision=1)
    events = await empty.channel.get_exchange(topology.EVENTS_EXCHANGE)
    message = to_message(event, message_id=str(event.id), correlation_id=None)
    await publish(events, message, event.type)
    await kill(empty.channel, await empty.channel.get_queue(topology.SCHEDULER_EVENTS_QUEUE))
    await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 1)

    [letter] = (await dead_letters.peek(empty.connection, limit=1)).letters
    result = await dead_letters.replay(empty.connection, message_ids=[str(event.id)])

    assert letter.death is not None
    assert (letter.death.exchange, letter.death.routing_keys) == (
        topology.EVENTS_EXCHANGE,
        ("mailing.created",),
    )
    assert letter.type == "mailing.created"
    assert len(result.replayed) == 1
    scheduler_events = await empty.channel.get_queue(topology.SCHEDULER_EVENTS_QUEUE)
    back = await scheduler_events.get(timeout=5, no_ack=True)
    assert back is not None
    assert back.routing_key == "mailing.created"
    assert MailingChanged.model_validate_json(back.body) == event


async def test_replay_by_id_takes_only_that_letter(empty: Broker) -> None:
    first, second = await dead_command(empty), await dead_command(empty)
    await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 2)

    result = await dead_letters.replay(empty.connection, message_ids=[str(second.id)])

    assert [letter.message_id for letter in result.replayed] == [str(second.id)]
    remaining = await dead_letters.peek(empty.connection, limit=10)
    assert [letter.message_id for letter in remaining.letters] == [str(first.id)]
    assert await depth(empty.channel, topology.SEND_COMMANDS_QUEUE, 1) == 1


async def test_a_dry_run_changes_nothing(empty: Broker) -> None:
    command = await dead_command(empty)
    await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 1)

    result = await dead_letters.replay(empty.connection, dry_run=True)

    assert result.dry_run
    assert [letter.message_id for letter in result.replayed] == [str(command.id)]
    assert await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 1) == 1
    assert await depth(empty.channel, topology.SEND_COMMANDS_QUEUE) == 0


async def test_an_unknown_id_replays_nothing(empty: Broker) -> None:
    command = await dead_command(empty)
    await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 1)

    with pytest.raises(dead_letters.UnknownMessageIds) as raised:
        await dead_letters.replay(empty.connection, message_ids=[str(command.id), "nope"])

    assert raised.value.ids == ["nope"]
    assert await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 1) == 1
    assert await depth(empty.channel, topology.SEND_COMMANDS_QUEUE) == 0


async def test_a_letter_of_unknown_origin_is_left_with_the_reason(empty: Broker) -> None:
    dead = await empty.channel.get_exchange(topology.DEAD_EXCHANGE)
    await dead.publish(aio_pika.Message(b"not json", message_id="stray"), routing_key="")
    await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 1)

    result = await dead_letters.replay(empty.connection)

    assert result.replayed == []
    [(letter, reason)] = result.left
    assert letter.message_id == "stray"
    assert letter.type is None
    assert "x-death" in reason
    assert await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 1) == 1


async def test_a_failed_publish_keeps_the_letter(empty: Broker) -> None:
    # The letter's origin no longer routes anywhere: its queue's binding is gone.
    await dead_command(empty)
    await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 1)
    commands = await empty.channel.get_queue(topology.SEND_COMMANDS_QUEUE)
    send = await empty.channel.get_exchange(topology.SEND_EXCHANGE)
    await commands.unbind(send, topology.SEND_ROUTING_KEY)
    try:
        result = await dead_letters.replay(empty.connection)
    finally:
        await commands.bind(send, topology.SEND_ROUTING_KEY)

    assert result.replayed == []
    [(_, reason)] = result.left
    assert "publishing to herald.send failed" in reason
    assert await depth(empty.channel, topology.DEAD_LETTER_QUEUE, 1) == 1


async def test_a_vhost_without_herald_has_no_dead_letter_queue(amqp_server_url: str) -> None:
    with fresh_vhost(amqp_server_url, f"herald-test-{RUN_ID}-dead-none") as url:
        if url == amqp_server_url:
            pytest.skip("needs a vhost of its own (rabbitmqctl on this machine)")
        connection = await aio_pika.connect(url)
        async with connection:
            with pytest.raises(dead_letters.MissingQueue):
                await dead_letters.peek(connection, limit=1)
