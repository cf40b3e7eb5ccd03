"""``herald dead-letters list|replay`` run as an operator runs it: the venv's ``herald``
script in a process of its own, against a vhost of this module's own."""

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from herald_common.broker import topology
from herald_common.broker.connection import publish, to_message
from herald_common.contracts import MessageRef, SendMessages
from herald_common.settings import QueueType
from tests.conftest import RUN_ID, fresh_vhost

HERALD = Path(sys.executable).parent / "herald"
ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Broker:
    url: str
    channel: AbstractChannel


@pytest.fixture(scope="module")
async def broker(amqp_server_url: str) -> AsyncIterator[Broker]:
    with fresh_vhost(amqp_server_url, f"herald-test-{RUN_ID}-dead-cli") as url:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await topology.declare_topology(channel, QueueType.classic)
            yield Broker(url, channel)


async def herald(*args: str, amqp_url: str) -> tuple[int, str, str]:
    environment = {**os.environ, "HERALD_AMQP_URL": amqp_url, "HERALD_LOG_FORMAT": "json"}
    process = await asyncio.create_subprocess_exec(
        str(HERALD), "dead-letters", *args,
        cwd=ROOT, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def depth(channel: AbstractChannel, name: str, expected: int) -> int:
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        queue = await channel.declare_queue(name, passive=True)
        count = queue.declaration_result.message_count or 0
        if count == expected or asyncio.get_running_loop().time() > deadline:
            return count
        await asyncio.sleep(0.05)


async def dead_command(channel: AbstractChannel) -> SendMessages:
    command = SendMessages(mailing_id=5, messages=[MessageRef(id=9)], token=uuid.uuid4())
    send = await channel.get_exchange(topology.SEND_EXCHANGE)
    message = to_message(command, message_id=str(command.id), correlation_id="req-cli")
    await publish(send, message, topology.SEND_ROUTING_KEY)
    commands = await channel.get_queue(topology.SEND_COMMANDS_QUEUE)
    taken = await commands.get(timeout=5, no_ack=False)
    assert taken is not None
    await taken.reject(requeue=False)
    await depth(channel, topology.DEAD_LETTER_QUEUE, 1)
    return command


async def test_list_then_replay_through_the_cli(broker: Broker) -> None:
    command = await dead_command(broker.channel)
    message_id = str(command.id)

    code, stdout, stderr = await herald("list", amqp_url=broker.url)
    assert code == 0, stderr
    assert f"1. send_messages  message {message_id}  correlation req-cli" in stdout
    assert "in herald.send.commands (rejected); came from exchange herald.send" in stdout
    assert "routing key send" in stdout
    assert 'body: {"mailing_id":5,"messages":[{"id":9' in stdout
    assert "herald.dead holds 1 dead letter; showed 1, all left in place" in stderr

    code, stdout, stderr = await herald("list", "--json", amqp_url=broker.url)
    assert code == 0, stderr
    document = json.loads(stdout)
    assert document["depth"] == 1
    [letter] = document["dead_letters"]
    assert letter["message_id"] == message_id
    assert (letter["queue"], letter["exchange"], letter["routing_keys"], letter["reason"]) == (
        topology.SEND_COMMANDS_QUEUE,
        topology.SEND_EXCHANGE,
        [topology.SEND_ROUTING_KEY],
        "rejected",
    )
    assert letter["type"] == "send_messages"
    assert letter["died_at"]

    code, stdout, stderr = await herald("replay", "--all", "--dry-run", amqp_url=broker.url)
    assert code == 0, stderr
    assert f"would replay  {message_id}  send_messages  -> exchange herald.send" in stdout
    assert "nothing changed" in stderr
    assert await depth(broker.channel, topology.DEAD_LETTER_QUEUE, 1) == 1

    code, stdout, stderr = await herald("replay", "--message-id", "nope", amqp_url=broker.url)
    assert code == 2
    assert stdout == ""
    assert "no dead letter with message id nope" in stderr
    assert await depth(broker.channel, topology.DEAD_LETTER_QUEUE, 1) == 1

    code, stdout, stderr = await herald("replay", "--message-id", message_id, amqp_url=broker.url)
    assert code == 0, stderr
    assert f"replayed  {message_id}  send_messages  -> exchange herald.send" in stdout
    assert await depth(broker.channel, topology.DEAD_LETTER_QUEUE, 0) == 0
    commands = await broker.channel.get_queue(topology.SEND_COMMANDS_QUEUE)
    back = await commands.get(timeout=5, no_ack=True)
    assert back is not None
    assert back.message_id == message_id


async def test_replay_needs_all_or_ids(broker: Broker) -> None:
    code, _, stderr = await herald("replay", amqp_url=broker.url)

    assert code == 2
    assert "one of the arguments --all --message-id is required" in stderr


async def test_an_unreachable_broker_is_one_clear_line_and_exit_2() -> None:
    code, stdout, stderr = await herald("list", amqp_url="amqp://guest:secret@127.0.0.1:1/")

    assert code == 2
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "cannot reach RabbitMQ at 127.0.0.1:1" in stderr
    assert "rabbitmq-server -detached" in stderr
    assert "HERALD_AMQP_URL" in stderr
    assert "secret" not in stderr


async def test_a_vhost_without_herald_says_so(amqp_server_url: str) -> None:
    with fresh_vhost(amqp_server_url, f"herald-test-{RUN_ID}-dead-cli-none") as url:
        if url == amqp_server_url:
            pytest.skip("needs a vhost of its own (rabbitmqctl on this machine)")
        code, _, stderr = await herald("list", amqp_url=url)

    assert code == 2
    assert "there is no queue herald.dead in vhost" in stderr
