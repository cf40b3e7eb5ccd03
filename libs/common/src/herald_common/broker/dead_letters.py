"""herald.dead read and replayed: what died, where and why, and putting it back where it came from.

AMQP has no peek. Reading a dead letter takes it (``basic.get`` without an ack), and it
stays unacked on the reading channel until it is acked (replayed) or handed back
(``basic.nack`` with requeue); a channel or process that dies first hands it back too.
A replay publishes a copy to the exchange and routing key of the letter's last death
(``x-death``'s first entry), waits for the broker's confirm, and only then acks the dead
letter: whatever fails, no dead letter is lost. At worst a crash between the confirm
and the ack leaves a letter both replayed and still in herald.dead.

Replaying is safe for herald's consumers: events and commands carry ids, not state; a
send command sends only rows that still carry its dispatch token, so a stale copy sends
nothing; status outcomes only move a message forward.
"""

import asyncio
import contextlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from herald_common.broker.connection import CORRELATION_HEADER, publish
from herald_common.broker.topology import DEAD_LETTER_QUEUE

EXCERPT_CHARACTERS = 160
PUBLISH_TIMEOUT = 10.0
# How long a hand-back waits to see its letters ready again (see _Taken.hand_back).
HAND_BACK_WAIT = 5.0
# Set by the broker for the queue a message sat in; a replayed copy starts afresh.
_BROKER_HEADERS = frozenset({"x-delivery-count"})
_ENVELOPE_FIELDS = frozenset({"id", "type", "correlation_id", "occurred_at", "schema_version"})
_GONE = (AMQPError, ChannelInvalidStateError, ConnectionError)


@dataclass(frozen=True)
class Death:
    """One ``x-death`` entry: the queue a message died in, how it got there, and why."""

    queue: str
    exchange: str
    routing_keys: tuple[str, ...]
    reason: str
    count: int
    time: datetime | None


@dataclass(frozen=True)
class DeadLetter:
    message_id: str | None
    correlation_id: str | None
    type: str | None
    # The most recent death (RabbitMQ keeps it first); None when the message was
    # published to herald.dead directly, so that where it came from is unknown.
    death: Death | None
    body: bytes

    @property
    def excerpt(self) -> str:
        return excerpt(self.body)

    def as_json(self) -> dict[str, Any]:
        death = self.death
        return {
            "message_id": self.message_id,
            "correlation_id": self.correlation_id,
            "type": self.type,
            "queue": death.queue if death else None,
            "exchange": death.exchange if death else None,
            "routing_keys": list(death.routing_keys) if death else None,
            "reason": death.reason if death else None,
            "deaths": death.count if death else None,
            "died_at": death.time.isoformat() if death and death.time else None,
            "body_bytes": len(self.body),
            "body_excerpt": self.excerpt,
        }


def excerpt(body: bytes, limit: int = EXCERPT_CHARACTERS) -> str:
    """The body's start on one line, whatever bytes it holds.

    Of a JSON envelope, its payload: the envelope's own fields (id, type, correlation id,
    timestamp, schema version) come first in every body and would fill the excerpt, and
    the listing shows the ones that matter beside it.
    """
    envelope = _json_object(body)
    if envelope:
        payload = {k: v for k, v in envelope.items() if k not in _ENVELOPE_FIELDS}
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    else:
        text = " ".join(body.decode("utf-8", errors="replace").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def last_death(headers: Mapping[str, Any]) -> Death | None:
    deaths = headers.get("x-death")
    if not isinstance(deaths, list) or not deaths or not isinstance(deaths[0], Mapping):
        return None
    entry = deaths[0]
    keys = entry.get("routing-keys")
    died_at = entry.get("time")
    count = entry.get("count")
    return Death(
        queue=_text(entry.get("queue")) or "",
        exchange=_text(entry.get("exchange")) or "",
        routing_keys=tuple(_text(k) or "" for k in keys) if isinstance(keys, list) else (),
        reason=_text(entry.get("reason")) or "",
        count=count if isinstance(count, int) else 1,
        time=died_at if isinstance(died_at, datetime) else None,
    )


def read(message: AbstractIncomingMessage) -> DeadLetter:
    """What a dead letter is; never fails, whatever its body or headers."""
    headers: Mapping[str, Any] = message.headers or {}
    envelope = _json_object(message.body)
    correlation_id = (
        message.correlation_id
        or _text(headers.get(CORRELATION_HEADER))
        or _text(envelope.get("correlation_id"))
    )
    return DeadLetter(
        message_id=message.message_id,
        correlation_id=correlation_id,
        type=_text(envelope.get("type")),
        death=last_death(headers),
        body=message.body,
    )


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class MissingQueue(Exception):
    """herald.dead does not exist: no herald service declared the topology on this vhost."""


class UnknownMessageIds(Exception):
    def __init__(self, ids: Collection[str]) -> None:
        self.ids = sorted(ids)
        super().__init__(f"no dead letter with message id {', '.join(self.ids)}")


@dataclass(frozen=True)
class Listing:
    depth: int  # letters ready in herald.dead when the listing began
    letters: list[DeadLetter]


@dataclass
class ReplayResult:
    depth: int
    replayed: list[DeadLetter] = field(default_factory=list)
    # Selected but left in herald.dead, each with the reason.
    left: list[tuple[DeadLetter, str]] = field(default_factory=list)
    dry_run: bool = False


@dataclass
class _Taken:
    """Dead letters read and still unacked on one channel; handed back on close."""

    channel: AbstractChannel
    queue: AbstractQueue
    depth: int
    messages: list[AbstractIncomingMessage] = field(default_factory=list)
    settled: set[int] = field(default_factory=set)

    async def take(self, limit: int) -> None:
        # Never more than were there at the start: a replayed letter that dies again at
        # once comes back behind them, and must not be read (and replayed) once more.
        while len(self.messages) < min(limit, self.depth):
            message = await self.queue.get(no_ack=False, fail=False)
            if message is None:
                return
            self.messages.append(message)

    async def ack(self, message: AbstractIncomingMessage) -> None:
        await message.ack()
        self.settled.add(id(message))

    async def hand_back(self) -> None:
        """Every letter not acked goes back to herald.dead, in its place.

        Explicit nacks rather than only closing the channel: on RabbitMQ 4.3 and later a
        nack with requeue does not count towards a quorum queue's delivery limit, while
        a closed channel's return does.
        """
        unsettled = [m for m in self.messages if id(m) not in self.settled]
        # A broker error here needs no handling: a channel or connection that is gone
        # has handed its unacked letters back by itself.
        with contextlib.suppress(*_GONE):
            if not self.channel.is_closed:
                for message in unsettled:
                    await message.nack(requeue=True)
                if unsettled:
                    await self._until_ready_again()
        with contextlib.suppress(*_GONE):
            if not self.channel.is_closed:
                await self.channel.close()

    async def _until_ready_again(self) -> None:
        """Wait until herald.dead holds again what it held less what was acked.

        A quorum queue requeues through its log, so a nacked letter is ready a moment
        after the nack; without the wait, a listing followed at once by a replay could
        find herald.dead empty. Bounded: a concurrent reader may hold letters too.
        """
        expected = self.depth - len(self.settled)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HAND_BACK_WAIT
        while loop.time() < deadline:
            queue = await self.channel.declare_queue(DEAD_LETTER_QUEUE, passive=True)
            if (queue.declaration_result.message_count or 0) >= expected:
                return
            await asyncio.sleep(0.02)


async def _open(connection: AbstractConnection) -> _Taken:
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(DEAD_LETTER_QUEUE, passive=True)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        raise MissingQueue(DEAD_LETTER_QUEUE) from None
    result = queue.declaration_result
    return _Taken(channel, queue, depth=result.message_count or 0)


async def peek(connection: AbstractConnection, limit: int) -> Listing:
    """The first ``limit`` dead letters, left in herald.dead in their order."""
    taken = await _open(connection)
    try:
        await taken.take(limit)
        return Listing(taken.depth, [read(m) for m in taken.messages])
    finally:
        await taken.hand_back()


async def replay(
    connection: AbstractConnection,
    *,
    message_ids: Collection[str] | None = None,
    dry_run: bool = False,
) -> ReplayResult:
    """Replay every dead letter (``message_ids`` None) or those with the ids given.

    An id with no letter raises UnknownMessageIds before anything is replayed. The first
    publish that fails (unroutable, the exchange gone, no confirm in time) stops the
    replay: that letter and the rest stay in herald.dead, listed in ``left``.
    """
    wanted = set(message_ids) if message_ids is not None else None
    taken = await _open(connection)
    publisher: AbstractChannel | None = None
    try:
        await taken.take(taken.depth)
        selected = [m for m in taken.messages if wanted is None or (m.message_id or "") in wanted]
        if wanted is not None:
            missing = wanted - {m.message_id for m in selected if m.message_id}
            if missing:
                raise UnknownMessageIds(missing)
        result = ReplayResult(depth=taken.depth, dry_run=dry_run)
        exchanges: dict[str, AbstractExchange] = {}
        failure: str | None = None
        for message in selected:
            letter = read(message)
            death = letter.death
            if failure is not None:
                result.left.append((letter, f"not tried after the failure: {failure}"))
                continue
            if death is None:
                result.left.append((letter, "no x-death header: where it came from is unknown"))
                continue
            if dry_run:
                result.replayed.append(letter)
                continue
            if publisher is None:
                # on_return_raises: an unroutable copy is a failed replay, not a drop.
                publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
            try:
                exchange = exchanges.get(death.exchange)
                if exchange is None:
                    exchange = (
                        await publisher.get_exchange(death.exchange, ensure=False)
                        if death.exchange
                        else publisher.default_exchange
                    )
                    exchanges[death.exchange] = exchange
                routing_key = death.routing_keys[0] if death.routing_keys else ""
                await asyncio.wait_for(
                    publish(exchange, copy_of(message), routing_key), PUBLISH_TIMEOUT
                )
            except (*_GONE, TimeoutError) as error:
                failure = f"publishing to {death.exchange or '(default)'} failed: {_why(error)}"
                result.left.append((letter, failure))
                continue
            # Only after the confirm: a crash before this line leaves the letter in
            # herald.dead as well as replayed, never in neither.
            await taken.ack(message)
            result.replayed.append(letter)
        return result
    finally:
        try:
            await taken.hand_back()
        finally:
            if publisher is not None and not publisher.is_closed:
                with contextlib.suppress(*_GONE):
                    await publisher.close()


def copy_of(message: AbstractIncomingMessage) -> aio_pika.Message:
    """The dead letter as it was published, with its death history.

    Kept: body, headers (``x-death`` too, so that a letter dying again shows its count
    grow) and properties. Dropped: ``expiration`` (herald sets none; a copy would expire
    at once) and ``user_id`` (the broker checks it against this connection's user).
    """
    headers = {k: v for k, v in (message.headers or {}).items() if k not in _BROKER_HEADERS}
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=message.delivery_mode or aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


def _why(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
