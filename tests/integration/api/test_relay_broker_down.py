"""Broker down: requests still succeed, rows wait in the outbox, and go out once it is back.

No other app runs in this module, so no other relay can publish the rows checked here.
"""

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.app import create_app
from herald_api.outbox import writer
from herald_api.outbox.relay import OutboxRelay
from herald_common.broker.connection import connect
from herald_common.contracts import EventType
from herald_common.settings import HeraldSettings
from tests.integration.api.conftest import BASE_URL, api_settings
from tests.integration.api.factories import create_api_key, mailing_body, outbox_rows

DEAD_AMQP_URL = "amqp://guest:guest@127.0.0.1:1/"


@pytest.fixture
async def dead_broker_api(
    settings: HeraldSettings, clean_db: object, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(api_settings(settings, amqp_url=DEAD_AMQP_URL))
    key = await create_api_key(sessionmaker, "broker-down")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers=headers
        ) as client:
            yield client


async def test_requests_succeed_and_rows_wait_while_the_broker_is_unreachable(
    dead_broker_api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    response = await dead_broker_api.post("/api/v1/mailings", json=mailing_body())
    await asyncio.sleep(0.5)  # the relay is woken and fails to connect meanwhile

    assert response.status_code == 201
    [row] = await outbox_rows(sessionmaker)
    assert row.event_type == "mailing.created"
    assert row.published_at is None
    ready = await dead_broker_api.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"postgresql": "ok", "rabbitmq": "down"}
    assert "rabbitmq" in ready.json()["error"]["message"]
    assert (await dead_broker_api.get("/healthz")).status_code == 200


async def test_the_relay_publishes_everything_once_the_broker_is_back(
    settings: HeraldSettings, clean_db: object, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    attempts = 0

    async def flaky_connect(url: str, service: str) -> AbstractRobustConnection:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise ConnectionRefusedError("broker still down")
        return await connect(url, service)

    async with sessionmaker() as session, session.begin():
        await writer.record(
            session,
            [
                writer.mailing_changed(EventType.mailing_created, number, 1)
                for number in range(1, 4)
            ],
        )
    relay = OutboxRelay(
        sessionmaker,
        settings.amqp_url,
        settings.queue_type,
        interval=0.05,
        connect_broker=flaky_connect,
    )
    task = asyncio.create_task(relay.run())
    try:
        for _ in range(200):
            rows = await outbox_rows(sessionmaker)
            if all(row.published_at is not None for row in rows):
                break
            await asyncio.sleep(0.05)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 5)

    assert attempts == 3
    assert [row.published_at is not None for row in rows] == [True, True, True]
    assert not relay.broker_connected  # stop closed the connection


class BrokerLink:
    """A loopback TCP proxy to RabbitMQ that the test can cut and restore, like an outage."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._streams: list[asyncio.StreamWriter] = []

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for stream in self._streams:
            stream.close()
        self._streams.clear()
        await self._server.wait_closed()

    async def _pipe(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._streams += [client_writer, upstream_writer]

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()

        await asyncio.gather(
            copy(client_reader, upstream_writer), copy(upstream_reader, client_writer)
        )


async def _published(sessionmaker: async_sessionmaker[AsyncSession]) -> list[bool]:
    return [row.published_at is not None for row in await outbox_rows(sessionmaker)]


async def _wait_until_all_published(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    for _ in range(300):
        if all(await _published(sessionmaker)):
            return
        await asyncio.sleep(0.1)


async def test_a_broker_outage_after_connecting_delays_events_but_loses_none(
    settings: HeraldSettings, clean_db: object, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    parts = urlsplit(settings.amqp_url)
    link = BrokerLink(parts.hostname or "127.0.0.1", parts.port or 5672)
    await link.up()
    url = urlunsplit(
        parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{link.port}")
    )
    relay = OutboxRelay(sessionmaker, url, settings.queue_type, interval=0.05)
    task = asyncio.create_task(relay.run())

    async def record(mailing_id: int) -> None:
        async with sessionmaker() as session, session.begin():
            event = writer.mailing_changed(EventType.mailing_updated, mailing_id, 2)
            await writer.record(session, [event])
        relay.wake()

    try:
        await record(1)
        await _wait_until_all_published(sessionmaker)
        assert await _published(sessionmaker) == [True]

        await link.down()
        await record(2)
        await asyncio.sleep(1.0)
        assert await _published(sessionmaker) == [True, False]
        assert not relay.broker_connected

        await link.up()
        await _wait_until_all_published(sessionmaker)
    finally:
        relay.stop()
        await asyncio.wait_for(task, 5)
        await link.down()

    assert await _published(sessionmaker) == [True, True]
