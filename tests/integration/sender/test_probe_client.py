"""Both transports against the stub: the request they make, and how failures surface."""

import asyncio
import contextlib

import pytest
from pydantic import SecretStr

from bench.system import free_port
from herald_sender.probe_client import (
    AiohttpProbeClient,
    ProbeClient,
    ProbeConnectionError,
    ProbeTimeout,
    ReqwestProbeClient,
    Transport,
    open_probe_client,
)
from tests.integration.sender.conftest import STUB_TOKEN, Stub


@pytest.fixture(params=list(Transport))
def transport(request: pytest.FixtureRequest) -> Transport:
    value: Transport = request.param
    return value


def client_of(
    transport: Transport, base_url: str, token: str = STUB_TOKEN
) -> contextlib.AbstractAsyncContextManager[ProbeClient]:
    return open_probe_client(transport, base_url, SecretStr(token), concurrency=2)


async def test_sends_the_contracts_request(stub: Stub, transport: Transport) -> None:
    async with client_of(transport, f"{stub.url}/v1/") as client:
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


async def test_a_wrong_token_is_answered_401(stub: Stub, transport: Transport) -> None:
    async with client_of(transport, stub.url, "wrong") as client:
        response = await client.send(1, 79001234567, "x", timeout=5)
    assert response.status == 401


async def test_rate_limit_carries_retry_after(stub: Stub, transport: Transport) -> None:
    await stub.configure(rate_limit=0.001)
    async with client_of(transport, stub.url) as client:
        answers = [await client.send(i, 79001234567, "x", timeout=5) for i in range(1, 4)]
    limited = [answer for answer in answers if answer.status == 429]
    assert limited
    assert all(answer.retry_after == "1" for answer in limited)


async def test_a_hanging_request_times_out(stub: Stub, transport: Transport) -> None:
    await stub.configure(hang_rate=1.0, hang_seconds=5)
    async with client_of(transport, stub.url) as client:
        with pytest.raises(ProbeTimeout) as raised:
            await client.send(1, 79001234567, "x", timeout=0.3)
    assert 0.25 <= raised.value.latency < 2


async def test_a_reset_connection_is_a_connection_error(stub: Stub, transport: Transport) -> None:
    await stub.configure(reset_rate=1.0)
    async with client_of(transport, stub.url) as client:
        with pytest.raises(ProbeConnectionError):
            await client.send(1, 79001234567, "x", timeout=5)


async def test_a_refused_connection_is_a_connection_error(transport: Transport) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with client_of(transport, closed) as client:
        with pytest.raises(ProbeConnectionError):
            await client.send(1, 79001234567, "x", timeout=5)


async def test_a_malformed_answer_is_reported_as_it_came(stub: Stub, transport: Transport) -> None:
    await stub.configure(malformed_rate=1.0)
    async with client_of(transport, stub.url) as client:
        response = await client.send(1, 79001234567, "x", timeout=5)
    assert response.status == 200
    assert response.body != b'{"code":0,"message":"OK"}'


async def test_no_redirect_is_followed(transport: Transport) -> None:
    """A redirect is the API's answer (judged permanent), never a request elsewhere."""
    requests: list[bytes] = []

    async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            await answer(reader, writer)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            requests.append(head.split(b"\r\n", 1)[0])
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 307 Temporary Redirect\r\n"
                b"Location: /elsewhere\r\nContent-Length: 0\r\n\r\n"
            )
            await writer.drain()

    server = await asyncio.start_server(redirect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with client_of(transport, f"http://127.0.0.1:{port}") as client:
            response = await client.send(7, 79001234567, "x", timeout=5)
    finally:
        server.close()
    assert response.status == 307
    assert requests == [b"POST /send/7 HTTP/1.1"]


def test_each_transport_has_its_client() -> None:
    assert isinstance(client_of(Transport.reqwest, "http://x"), ReqwestProbeClient)
    assert isinstance(client_of(Transport.aiohttp, "http://x"), AiohttpProbeClient)
