"""Every exchange and queue herald uses, declared idempotently by every service at start.

    api ──▶ herald.events (topic) ──▶ herald.scheduler.events ──▶ scheduler
    scheduler ──▶ herald.send (direct) ──▶ herald.send.commands ──▶ sender
    sender ──▶ herald.retry (direct) ──▶ herald.retry.<tier> ──(TTL)──▶ herald.send
    sender ──▶ herald.status (direct) ──▶ herald.status.events ──▶ scheduler
    rejected (poison) messages ──▶ herald.dead (fanout) ──▶ herald.dead

A per-message TTL only fires at the head of a queue, so each retry delay is its own
queue with a queue-wide TTL that dead-letters back into ``herald.send``.
"""

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from herald_common.settings import QueueType

EVENTS_EXCHANGE = "herald.events"
SEND_EXCHANGE = "herald.send"
RETRY_EXCHANGE = "herald.retry"
STATUS_EXCHANGE = "herald.status"
DEAD_EXCHANGE = "herald.dead"

SCHEDULER_EVENTS_QUEUE = "herald.scheduler.events"
SEND_COMMANDS_QUEUE = "herald.send.commands"
STATUS_EVENTS_QUEUE = "herald.status.events"
DEAD_LETTER_QUEUE = "herald.dead"

SEND_ROUTING_KEY = "send"
STATUS_ROUTING_KEY = "status"


@dataclass(frozen=True)
class RetryTier:
    name: str
    seconds: int

    @property
    def queue(self) -> str:
        return f"herald.retry.{self.name}"


RETRY_TIERS = (
    RetryTier("5s", 5),
    RetryTier("30s", 30),
    RetryTier("2m", 120),
    RetryTier("10m", 600),
)


def queue_arguments(queue_type: QueueType, extra: dict[str, Any]) -> dict[str, Any]:
    arguments: dict[str, Any] = {"x-queue-type": queue_type.value, **extra}
    if queue_type is QueueType.quorum:
        # Quorum queues dead-letter at-least-once only with reject-publish overflow.
        arguments["x-dead-letter-strategy"] = "at-least-once"
        arguments["x-overflow"] = "reject-publish"
    return arguments


@dataclass(frozen=True)
class Topology:
    events: AbstractExchange
    send: AbstractExchange
    retry: AbstractExchange
    status: AbstractExchange


async def declare_topology(channel: AbstractChannel, queue_type: QueueType) -> Topology:
    """Declare every exchange, queue and binding; safe to run any number of times."""
    events = await channel.declare_exchange(
        EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    send = await channel.declare_exchange(SEND_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    retry = await channel.declare_exchange(
        RETRY_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    status = await channel.declare_exchange(
        STATUS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead = await channel.declare_exchange(DEAD_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True)

    dead_letter = await channel.declare_queue(
        DEAD_LETTER_QUEUE, durable=True, arguments=queue_arguments(queue_type, {})
    )
    await dead_letter.bind(dead)

    poison_to_dead = {"x-dead-letter-exchange": DEAD_EXCHANGE}
    scheduler_events = await _declare(channel, SCHEDULER_EVENTS_QUEUE, queue_type, poison_to_dead)
    await scheduler_events.bind(events, routing_key="mailing.*")
    await scheduler_events.bind(events, routing_key="client.*")

    commands = await _declare(channel, SEND_COMMANDS_QUEUE, queue_type, poison_to_dead)
    await commands.bind(send, routing_key=SEND_ROUTING_KEY)

    status_events = await _declare(channel, STATUS_EVENTS_QUEUE, queue_type, poison_to_dead)
    await status_events.bind(status, routing_key=STATUS_ROUTING_KEY)

    for tier in RETRY_TIERS:
        delayed = await _declare(
            channel,
            tier.queue,
            queue_type,
            {
                "x-message-ttl": tier.seconds * 1000,
                "x-dead-letter-exchange": SEND_EXCHANGE,
                "x-dead-letter-routing-key": SEND_ROUTING_KEY,
            },
        )
        await delayed.bind(retry, routing_key=tier.name)

    return Topology(events=events, send=send, retry=retry, status=status)


async def _declare(
    channel: AbstractChannel, name: str, queue_type: QueueType, arguments: dict[str, Any]
) -> AbstractQueue:
    return await channel.declare_queue(
        name, durable=True, arguments=queue_arguments(queue_type, arguments)
    )


def retry_tier_for(delay_seconds: float) -> RetryTier:
    """The longest tier that does not overshoot the delay (the shortest if none fits)."""
    fitting = [tier for tier in RETRY_TIERS if tier.seconds <= delay_seconds]
    return fitting[-1] if fitting else RETRY_TIERS[0]
