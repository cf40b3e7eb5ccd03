"""Every exchange and queue herald uses, declared idempotently by every service at start.

    api ──▶ herald.events (topic) ──▶ herald.scheduler.events ──▶ scheduler
    scheduler ──▶ herald.send (direct) ──▶ herald.send.commands ──▶ sender
    sender ──▶ herald.retry (direct) ──▶ herald.retry.<tier> ──(TTL)──▶ herald.send
    sender ──▶ herald.status (direct) ──▶ herald.status.events ──▶ scheduler
    rejected (poison) messages ──▶ herald.dead (fanout) ──▶ herald.dead

A per-message TTL only fires at the head of a queue, so each retry delay is its own
queue with a queue-wide TTL that dead-letters back into ``herald.send``.
"""

from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

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
class ExchangeSpec:
    name: str
    type: aio_pika.ExchangeType
    description: str


@dataclass(frozen=True)
class QueueSpec:
    """A durable queue, what it is for, and the (exchange, routing key) pairs it binds."""

    name: str
    description: str
    bindings: tuple[tuple[str, str], ...]
    arguments: dict[str, Any] = field(default_factory=dict)


# The whole topology as data: declare_topology declares it, and herald_common.broker.
# asyncapi documents it, so the document cannot drift from what runs.
EXCHANGES = (
    ExchangeSpec(
        EVENTS_EXCHANGE,
        aio_pika.ExchangeType.TOPIC,
        "Domain events from the api's outbox; the routing key is the event type.",
    ),
    ExchangeSpec(SEND_EXCHANGE, aio_pika.ExchangeType.DIRECT, "Send commands for the senders."),
    ExchangeSpec(
        RETRY_EXCHANGE,
        aio_pika.ExchangeType.DIRECT,
        "Deferred send commands; the routing key names the delay tier.",
    ),
    ExchangeSpec(STATUS_EXCHANGE, aio_pika.ExchangeType.DIRECT, "Status events from the senders."),
    ExchangeSpec(
        DEAD_EXCHANGE,
        aio_pika.ExchangeType.FANOUT,
        "Messages a consumer rejected (unparseable, or a bug handling them).",
    ),
)

_POISON_TO_DEAD = {"x-dead-letter-exchange": DEAD_EXCHANGE}

QUEUES = (
    QueueSpec(
        DEAD_LETTER_QUEUE,
        "Dead letters of every queue, kept for inspection and replay.",
        ((DEAD_EXCHANGE, ""),),
    ),
    QueueSpec(
        SCHEDULER_EVENTS_QUEUE,
        "Mailing and client events for the scheduler to reconcile the ledger.",
        ((EVENTS_EXCHANGE, "mailing.*"), (EVENTS_EXCHANGE, "client.*")),
        _POISON_TO_DEAD,
    ),
    QueueSpec(
        SEND_COMMANDS_QUEUE,
        "Send commands, shared by every sender.",
        ((SEND_EXCHANGE, SEND_ROUTING_KEY),),
        _POISON_TO_DEAD,
    ),
    QueueSpec(
        STATUS_EVENTS_QUEUE,
        "Status events for the scheduler's ledger writer.",
        ((STATUS_EXCHANGE, STATUS_ROUTING_KEY),),
        _POISON_TO_DEAD,
    ),
    *(
        QueueSpec(
            tier.queue,
            f"Deferred send commands waiting {tier.seconds} s; then back to {SEND_EXCHANGE}.",
            ((RETRY_EXCHANGE, tier.name),),
            {
                "x-message-ttl": tier.seconds * 1000,
                "x-dead-letter-exchange": SEND_EXCHANGE,
                "x-dead-letter-routing-key": SEND_ROUTING_KEY,
            },
        )
        for tier in RETRY_TIERS
    ),
)


@dataclass(frozen=True)
class Topology:
    events: AbstractExchange
    send: AbstractExchange
    retry: AbstractExchange
    status: AbstractExchange


async def declare_topology(channel: AbstractChannel, queue_type: QueueType) -> Topology:
    """Declare every exchange, queue and binding; safe to run any number of times."""
    exchanges = {
        spec.name: await channel.declare_exchange(spec.name, spec.type, durable=True)
        for spec in EXCHANGES
    }
    for spec in QUEUES:
        queue = await channel.declare_queue(
            spec.name, durable=True, arguments=queue_arguments(queue_type, spec.arguments)
        )
        for exchange, routing_key in spec.bindings:
            await queue.bind(exchanges[exchange], routing_key=routing_key or None)
    return Topology(
        events=exchanges[EVENTS_EXCHANGE],
        send=exchanges[SEND_EXCHANGE],
        retry=exchanges[RETRY_EXCHANGE],
        status=exchanges[STATUS_EXCHANGE],
    )


def longest_tier_within(delay_seconds: float) -> RetryTier:
    """The longest tier that does not overshoot the delay (the shortest if none fits)."""
    fitting = [tier for tier in RETRY_TIERS if tier.seconds <= delay_seconds]
    return fitting[-1] if fitting else RETRY_TIERS[0]
