"""The sender against the real PostgreSQL, RabbitMQ and herald's stub of the external API.

The tests play the scheduler: they write ledger rows, publish send commands, and read the
status events and deferred commands the sender publishes.
"""

import asyncio
import contextlib
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
import httpx
import orjson
import pamqp.commands
import pytest
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.system import BIN, free_port
from herald_common.broker.topology import (
    DEAD_LETTER_QUEUE,
    RETRY_TIERS,
    SEND_COMMANDS_QUEUE,
    SEND_EXCHANGE,
    SEND_ROUTING_KEY,
    STATUS_EVENTS_QUEUE,
    declare_topology,
)
from herald_common.contracts import MessagesProgressed, SendMessages
from herald_common.settings import HeraldSettings, QueueType
from herald_sender.main import run
from herald_sender.settings import SenderSettings

STUB_TOKEN = "dev-probe-token"
STUB_DEFAULTS: dict[str, Any] = {
    "token": STUB_TOKEN,
    "latency_ms": 0,
    "jitter_ms": 0,
    "load_latency_ms": 0,
    "error_rate": 0,
    "malformed_rate": 0,
    "hang_rate": 0,
    "hang_seconds": 30,
    "reset_rate": 0,
    "rate_limit": 0,
    "outages": [],
    "outage_mode": "503",
}


@dataclass
class Stub:
    """herald-probe-stub running as a subprocess, driven through its control API."""

    url: str
    http: httpx.AsyncClient

    async def configure(self, **changes: Any) -> None:
        response = await self.http.put(f"{self.url}/_stub/config", json=changes)
        assert response.status_code == 200, response.text

    async def reset(self) -> None:
        await self.configure(**STUB_DEFAULTS)
        response = await self.http.post(f"{self.url}/_stub/reset")
        assert response.status_code == 200, response.text

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self.http.get(f"{self.url}/_stub/stats")).json()
        return stats

    async def received(self) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.url}/_stub/received")
        return [orjson.loads(line) for line in response.content.splitlines()]

    async def wait_for_requests(self, count: int, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while (await self.stats())["requests"] < count:
            assert time.monotonic() < deadline, f"the stub did not get {count} requests"
            await asyncio.sleep(0.02)


@pytest.fixture(scope="session")
def stub_process() -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            [str(BIN / "herald-probe-stub"), "--port", str(port), "--seed", "1"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while True:
                assert process.poll() is None, "herald-probe-stub exited at start"
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                assert time.monotonic() < deadline, "herald-probe-stub did not start"
                time.sleep(0.05)
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
async def stub(stub_process: str) -> AsyncIterator[Stub]:
    async with httpx.AsyncClient(timeout=10) as http:
        running = Stub(stub_process, http)
        await running.reset()
        yield running


@dataclass
class Broker:
    """The test's side of RabbitMQ: publishes commands, reads what the sender published."""

    connection: AbstractRobustConnection
    channel: AbstractChannel

    async def purge(self) -> None:
        names = [SEND_COMMANDS_QUEUE, STATUS_EVENTS_QUEUE, DEAD_LETTER_QUEUE]
        for name in [*names, *(tier.queue for tier in RETRY_TIERS)]:
            queue = await self.channel.get_queue(name)
            await queue.purge()

    async def send(self, command: SendMessages) -> None:
        await self.send_raw(command.model_dump_json().encode())

    async def send_raw(self, body: bytes) -> None:
        exchange = await self.channel.get_exchange(SEND_EXCHANGE)
        await exchange.publish(
            aio_pika.Message(body, content_type="application/json"), routing_key=SEND_ROUTING_KEY
        )

    async def next_event(self, within: float = 10.0) -> MessagesProgressed:
        body = await self.take(STATUS_EVENTS_QUEUE, within)
        return MessagesProgressed.model_validate_json(body)

    async def take(self, queue_name: str, within: float = 10.0) -> bytes:
        queue = await self.channel.get_queue(queue_name)
        deadline = time.monotonic() + within
        while True:
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                return message.body
            assert time.monotonic() < deadline, f"nothing arrived in {queue_name}"
            await asyncio.sleep(0.02)

    async def deferred(self, tier_name: str) -> SendMessages:
        body = await self.take(f"herald.retry.{tier_name}", within=2.0)
        return SendMessages.model_validate_json(body)

    async def depth(self, queue_name: str) -> int:
        """Messages ready in a queue (unacked ones are not counted)."""
        count = (await self._inspect(queue_name)).message_count
        assert count is not None
        return count

    async def consumers(self, queue_name: str) -> int:
        count = (await self._inspect(queue_name)).consumer_count
        assert count is not None
        return count

    async def _inspect(self, queue_name: str) -> pamqp.commands.Queue.DeclareOk:
        # A robust channel caches declarations; the underlying channel asks the broker.
        channel = await self.channel.get_underlay_channel()
        declared: pamqp.commands.Queue.DeclareOk = await channel.queue_declare(
            queue_name, passive=True
        )
        return declared


@pytest.fixture(scope="session")
async def broker_connection(amqp_url: str) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(amqp_url)
    yield connection
    await connection.close()


@pytest.fixture
async def broker(broker_connection: AbstractRobustConnection) -> AsyncIterator[Broker]:
    channel = await broker_connection.channel()
    await declare_topology(channel, QueueType.classic)
    helper = Broker(broker_connection, channel)
    await helper.purge()
    yield helper
    await channel.close()


@pytest.fixture
def db(clean_db: AsyncEngine) -> AsyncEngine:
    return clean_db


SettingsFactory = Callable[..., SenderSettings]


@pytest.fixture
def sender_settings(settings: HeraldSettings, stub: Stub) -> SettingsFactory:
    def make(**overrides: Any) -> SenderSettings:
        values: dict[str, Any] = {
            "database_url": settings.database_url,
            "amqp_url": settings.amqp_url,
            "probe_url": f"{stub.url}/v1",
            "probe_token": STUB_TOKEN,
            "sender_metrics_port": 0,
            "sender_concurrency": 8,
            "sender_request_timeout": 5.0,
            "sender_drain_seconds": 3.0,
            **overrides,
        }
        return SenderSettings(**values)

    return make


@dataclass
class RunningSender:
    task: "asyncio.Task[None]"
    stop: asyncio.Event

    async def stopped(self, within: float = 10.0) -> float:
        """Stop the sender; returns how long it took."""
        started = time.monotonic()
        self.stop.set()
        await asyncio.wait_for(asyncio.shield(self.task), within)
        return time.monotonic() - started


SenderRunner = Callable[[SenderSettings], AbstractAsyncContextManager[RunningSender]]


@pytest.fixture
def running_sender(broker: Broker) -> SenderRunner:
    """Run a sender in-process; it is stopped (and must stop cleanly) on leaving."""

    @asynccontextmanager
    async def start(settings: SenderSettings) -> AsyncIterator[RunningSender]:
        stop = asyncio.Event()
        task = asyncio.create_task(run(settings, stop))
        # Started once it consumes (or has failed).
        deadline = time.monotonic() + 10
        while await broker.consumers(SEND_COMMANDS_QUEUE) == 0:
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, "the sender did not start consuming"
            await asyncio.sleep(0.02)
        sender = RunningSender(task, stop)
        try:
            yield sender
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)

    return start
