"""The aiohttp transport against the stub: the request it makes, and how failures surface."""

import pytest
from pydantic import SecretStr

from herald_sender.probe_client import (
    AiohttpProbeClient,
    ProbeConnectionError,
    ProbeTimeout,
)
from tests.integration.sender.conftest import STUB_TOKEN, Stub, free_port


async def test_sends_the_contracts_request(stub: Stub) -> None:
    async with AiohttpProbeClient(
        f"{stub.url}/v1/", SecretStr(STUB_TOKEN), concurrency=2
    ) as client:
        response = await client.send(42, 79001234567, "Привет", timeout=5)
    assert response.status == 200
    assert response.body == b'{"code":0,"message":"OK"}'
    assert response.latency > 0
    [request] = await stub.received()
    assert (request["id"], request["phone"], request["text"], request["outcome"]) == (
        42,
        79001234567,
        "Привет",
        "ok",
    )


async def test_a_wrong_token_is_answered_401(stub: Stub) -> None:
    async with AiohttpProbeClient(stub.url, SecretStr("wrong"), concurrency=2) as client:
        response = await client.send(1, 79001234567, "x", timeout=5)
    assert response.status == 401


async def test_rate_limit_carries_retry_after(stub: Stub) -> None:
    await stub.configure(rate_limit=0.001)
    async with AiohttpProbeClient(stub.url, SecretStr(STUB_TOKEN), concurrency=2) as client:
        answers = [await client.send(i, 79001234567, "x", timeout=5) for i in range(1, 4)]
    limited = [answer for answer in answers if answer.status == 429]
    assert limited
    assert all(answer.retry_after == "1" for answer in limited)


async def test_a_hanging_request_times_out(stub: Stub) -> None:
    await stub.configure(hang_rate=1.0, hang_seconds=5)
    async with AiohttpProbeClient(stub.url, SecretStr(STUB_TOKEN), concurrency=2) as client:
        with pytest.raises(ProbeTimeout) as raised:
            await client.send(1, 79001234567, "x", timeout=0.3)
    assert 0.25 <= raised.value.latency < 2


async def test_a_reset_connection_is_a_connection_error(stub: Stub) -> None:
    await stub.configure(reset_rate=1.0)
    async with AiohttpProbeClient(stub.url, SecretStr(STUB_TOKEN), concurrency=2) as client:
        with pytest.raises(ProbeConnectionError):
            await client.send(1, 79001234567, "x", timeout=5)


async def test_a_refused_connection_is_a_connection_error() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with AiohttpProbeClient(closed, SecretStr(STUB_TOKEN), concurrency=2) as client:
        with pytest.raises(ProbeConnectionError):
            await client.send(1, 79001234567, "x", timeout=5)
