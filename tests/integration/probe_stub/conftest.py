"""An in-process stub on a free loopback port, and small helpers to drive it."""

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from herald_probe_stub.app import ProbeStub
from herald_probe_stub.config import StubConfig
from herald_probe_stub.protocol import CoalescingHttpToolsProtocol
from herald_probe_stub.record_file import RecordFile

TOKEN = "dev-probe-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def message(msg_id: int, phone: int = 79001234567, text: str = "Hello") -> dict[str, Any]:
    return {"id": msg_id, "phone": phone, "text": text}


@dataclass
class RunningStub:
    app: ProbeStub
    url: str
    client: httpx.AsyncClient

    async def send(self, msg_id: int, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("json", message(msg_id))
        kwargs.setdefault("headers", AUTH)
        return await self.client.post(f"{self.url}/v1/send/{msg_id}", **kwargs)

    async def configure(self, **changes: Any) -> dict[str, Any]:
        response = await self.client.put(f"{self.url}/_stub/config", json=changes)
        assert response.status_code == 200, response.text
        config: dict[str, Any] = response.json()
        return config

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = (await self.client.get(f"{self.url}/_stub/stats")).json()
        return stats

    async def received(self) -> list[dict[str, Any]]:
        response = await self.client.get(f"{self.url}/_stub/received")
        assert response.headers["content-type"] == "application/x-ndjson"
        return [orjson.loads(line) for line in response.content.splitlines()]


@asynccontextmanager
async def running_stub(
    config: StubConfig | None = None, record_file: RecordFile | None = None
) -> AsyncIterator[RunningStub]:
    app = ProbeStub(config or StubConfig(), rng=random.Random(7), record_file=record_file)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,  # uvicorn binds it, so that asyncio sets TCP_NODELAY on its connections
            http=CoalescingHttpToolsProtocol,  # as herald-probe-stub serves it
            lifespan="on",
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
    )
    serving = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            yield RunningStub(app, f"http://127.0.0.1:{port}", client)
    finally:
        server.should_exit = True
        await serving


StubFactory = Callable[..., AbstractAsyncContextManager[RunningStub]]


@pytest.fixture(scope="session")
async def shared_stub() -> AsyncIterator[RunningStub]:
    # One server for the whole run: starting and stopping uvicorn costs ~0.25 s a test.
    async with running_stub() as running:
        yield running


@pytest.fixture
async def stub(shared_stub: RunningStub) -> RunningStub:
    """The shared stub with the default config and an empty request log."""
    shared_stub.app.reconfigure(StubConfig())
    shared_stub.app.clear()
    return shared_stub


@pytest.fixture
def stub_factory() -> StubFactory:
    return running_stub
