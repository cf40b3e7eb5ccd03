"""Robust connections and publishing with publisher confirms."""

from collections.abc import Mapping

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustConnection
from pydantic import BaseModel

CORRELATION_HEADER = "x-correlation-id"


async def connect(amqp_url: str, service: str) -> AbstractRobustConnection:
    """A connection that reconnects, and re-declares its channels' topology, by itself."""
    return await aio_pika.connect_robust(
        amqp_url, client_properties={"connection_name": service}, reconnect_interval=1
    )


def to_message(
    envelope: BaseModel,
    *,
    message_id: str,
    correlation_id: str | None,
    headers: Mapping[str, str] | None = None,
) -> aio_pika.Message:
    all_headers: dict[str, str] = dict(headers or {})
    if correlation_id:
        all_headers[CORRELATION_HEADER] = correlation_id
    return aio_pika.Message(
        envelope.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
        correlation_id=correlation_id,
        headers=dict(all_headers),
    )


async def publish(exchange: AbstractExchange, message: aio_pika.Message, routing_key: str) -> None:
    """Publish and wait for the broker's confirm (the channel must have confirms on).

    ``mandatory`` makes an unroutable message an error instead of a silent drop.
    """
    await exchange.publish(message, routing_key=routing_key, mandatory=True)
