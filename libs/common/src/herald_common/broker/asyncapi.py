"""herald's AsyncAPI 3.0 document: every exchange, queue, routing key and message.

Built from the topology's data (``topology.EXCHANGES``, ``topology.QUEUES``) and the
message contracts' pydantic models, so it describes exactly what runs. The api serves
it at ``/asyncapi.yaml``; ``make docs`` writes it to ``docs/asyncapi.yaml``, and a test
fails when that copy is stale.

    python -m herald_common.broker.asyncapi > docs/asyncapi.yaml
"""

import sys
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from herald_common.broker import topology
from herald_common.broker.connection import CORRELATION_HEADER
from herald_common.contracts import (
    SCHEMA_VERSION,
    ClientsChanged,
    MailingChanged,
    MessagesProgressed,
    SendMessages,
)

CONTRACTS: tuple[type[BaseModel], ...] = (
    MailingChanged,
    ClientsChanged,
    SendMessages,
    MessagesProgressed,
)

# Which contracts travel through each exchange (and so through the queues bound to it).
_CARRIED = {
    topology.EVENTS_EXCHANGE: (MailingChanged, ClientsChanged),
    topology.SEND_EXCHANGE: (SendMessages,),
    topology.RETRY_EXCHANGE: (SendMessages,),
    topology.STATUS_EXCHANGE: (MessagesProgressed,),
    topology.DEAD_EXCHANGE: CONTRACTS,
}


@dataclass(frozen=True)
class Operation:
    id: str
    action: str  # "send" or "receive", from the named service's side
    channel: str  # an exchange's or a queue's name
    summary: str


OPERATIONS = (
    Operation(
        "api.publishDomainEvents",
        "send",
        topology.EVENTS_EXCHANGE,
        "The api's outbox relay publishes each committed event; routing key = its type.",
    ),
    Operation(
        "scheduler.receiveDomainEvents",
        "receive",
        topology.SCHEDULER_EVENTS_QUEUE,
        "The scheduler reconciles the ledger with the mailing or clients named.",
    ),
    Operation(
        "scheduler.dispatch",
        "send",
        topology.SEND_EXCHANGE,
        "The dispatcher publishes commands for rows it committed queued under their token.",
    ),
    Operation(
        "sender.receiveCommands",
        "receive",
        topology.SEND_COMMANDS_QUEUE,
        "Senders deliver a command's messages that still carry its token.",
    ),
    Operation(
        "sender.defer",
        "send",
        topology.RETRY_EXCHANGE,
        "A sender defers messages after transient failures; routing key = the delay tier.",
    ),
    Operation(
        "sender.reportOutcomes",
        "send",
        topology.STATUS_EXCHANGE,
        "Senders publish what happened to each message of a command.",
    ),
    Operation(
        "scheduler.receiveOutcomes",
        "receive",
        topology.STATUS_EVENTS_QUEUE,
        "The ledger writer applies outcomes in batches; status only moves forward.",
    ),
    Operation(
        "operator.inspectDeadLetters",
        "receive",
        topology.DEAD_LETTER_QUEUE,
        "Nothing consumes dead letters: operators inspect them and move them back.",
    ),
)


def _exchange_channel_id(name: str) -> str:
    return "exchange." + name


def _queue_channel_id(name: str) -> str:
    return "queue." + name


def _message_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/messages/{model.__name__}"}


def _channels() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    for exchange in topology.EXCHANGES:
        carried = _CARRIED[exchange.name]
        routing_keys = sorted(
            {key for queue in topology.QUEUES for ex, key in queue.bindings if ex == exchange.name}
        )
        channels[_exchange_channel_id(exchange.name)] = {
            "address": exchange.name,
            "title": f"Exchange {exchange.name}",
            "description": exchange.description
            + (f" Routing keys bound: {', '.join(routing_keys)}." if any(routing_keys) else ""),
            "messages": {model.__name__: _message_ref(model) for model in carried},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": exchange.name,
                        "type": exchange.type.value,
                        "durable": True,
                        "autoDelete": False,
                        "vhost": "/",
                    },
                    "bindingVersion": "0.3.0",
                }
            },
        }
    for queue in topology.QUEUES:
        exchange_name = queue.bindings[0][0]
        bound = ", ".join(f"{ex} ({key or 'any key'})" for ex, key in queue.bindings)
        arguments = ", ".join(f"{k}={v}" for k, v in sorted(queue.arguments.items()))
        channels[_queue_channel_id(queue.name)] = {
            "address": queue.name,
            "title": f"Queue {queue.name}",
            "description": f"{queue.description} Bound to {bound}."
            + (f" Arguments: {arguments}." if arguments else "")
            + " x-queue-type is classic or quorum (HERALD_QUEUE_TYPE).",
            "messages": {model.__name__: _message_ref(model) for model in _CARRIED[exchange_name]},
            "bindings": {
                "amqp": {
                    "is": "queue",
                    "queue": {
                        "name": queue.name,
                        "durable": True,
                        "exclusive": False,
                        "autoDelete": False,
                        "vhost": "/",
                    },
                    "bindingVersion": "0.3.0",
                }
            },
        }
    return channels


def _operations(channels: dict[str, Any]) -> dict[str, Any]:
    queues = {queue.name for queue in topology.QUEUES}
    operations: dict[str, Any] = {}
    for operation in OPERATIONS:
        is_queue = operation.action == "receive" and operation.channel in queues
        channel_id = (
            _queue_channel_id(operation.channel)
            if is_queue
            else _exchange_channel_id(operation.channel)
        )
        operations[operation.id] = {
            "action": operation.action,
            "summary": operation.summary,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [
                {"$ref": f"#/channels/{channel_id}/messages/{name}"}
                for name in channels[channel_id]["messages"]
            ],
        }
    return operations


def _components() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(model, "serialization") for model in CONTRACTS],
        ref_template="#/components/schemas/{model}",
    )
    messages = {
        model.__name__: {
            "name": model.__name__,
            "title": model.__name__,
            "summary": (model.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "correlationId": {"$ref": "#/components/correlationIds/correlation"},
            "headers": {"$ref": "#/components/schemas/Headers"},
            "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        }
        for model in CONTRACTS
    }
    headers = {
        "type": "object",
        "properties": {
            CORRELATION_HEADER: {
                "type": "string",
                "description": "The request's correlation id, carried across every hop.",
            }
        },
    }
    return {
        "schemas": {**schemas.get("$defs", {}), "Headers": headers},
        "messages": messages,
        "correlationIds": {
            "correlation": {
                "description": "The correlation id of the api request that caused the message.",
                "location": f"$message.header#/{CORRELATION_HEADER}",
            }
        },
    }


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document, as plain data."""
    channels = _channels()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "herald message flows",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": (
                "Every exchange, queue, routing key and message herald uses on RabbitMQ. "
                "Envelopes carry an id, a type, a timestamp, a correlation id and a schema "
                "version; payloads carry ids, consumers read state from PostgreSQL. "
                "Queues dead-letter rejected messages to herald.dead."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "RabbitMQ as `make run` uses it (HERALD_AMQP_URL).",
            }
        },
        "channels": channels,
        "operations": _operations(channels),
        "components": _components(),
    }


def render() -> str:
    return yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=100)


if __name__ == "__main__":
    sys.stdout.write(render())
