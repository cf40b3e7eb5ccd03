"""The stub's uvicorn protocol: what reaches the transport, write by write.

Driven without a socket: a transport that records every write, close and abort, in front of
the real protocol, uvicorn and application. This also pins down what the protocol assumes of
uvicorn's request cycle (see herald_probe_stub.protocol).
"""

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import uvicorn
from uvicorn.server import ServerState

from herald_probe_stub.app import ProbeStub
from herald_probe_stub.config import StubConfig
from herald_probe_stub.protocol import CoalescingHttpToolsProtocol, HeadHoldingTransport
from tests.integration.probe_stub.conftest import TOKEN

OK_BODY = b'{"code":0,"message":"OK"}'


class FixedRandom(random.Random):
    """Every draw is ``value``: 0.0 meets every configured fault, a midway reset included."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


@dataclass
class RecordingTransport:
    protocol: asyncio.Protocol | None = None
    writes: list[bytes] = field(default_factory=list)
    ends: list[str] = field(default_factory=list)

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def _end(self, how: str) -> None:
        # As a socket transport does: the protocol learns of it at the loop's next turn.
        if not self.ends and self.protocol is not None:
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)
        self.ends.append(how)

    def close(self) -> None:
        self._end("close")

    def abort(self) -> None:
        self._end("abort")

    def is_closing(self) -> bool:
        return bool(self.ends)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        addresses = {"sockname": ("127.0.0.1", 8090), "peername": ("127.0.0.1", 50000)}
        return addresses.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@dataclass
class Connection:
    app: ProbeStub
    protocol: CoalescingHttpToolsProtocol
    transport: RecordingTransport
    state: ServerState

    async def feed(self, data: bytes, *, answered: bool = True) -> None:
        """Hand the protocol bytes as if read from the socket, and wait until the request
        they start or complete is ``answered`` (else, a few turns of the loop)."""
        self.protocol.data_received(data)
        for _ in range(5):
            await asyncio.sleep(0)
        if answered and self.state.tasks:
            _, pending = await asyncio.wait(set(self.state.tasks), timeout=5)
            assert not pending


def request(
    method: str, path: str, body: bytes = b"", *headers: tuple[str, str], token: str = TOKEN
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "host: stub", f"authorization: Bearer {token}"]
    if body or method in {"POST", "PUT"}:
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def send_body(msg_id: int) -> bytes:
    return orjson.dumps({"id": msg_id, "phone": 79001234567, "text": "Hello"})


Connect = Callable[..., Connection]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Opens a connection to a new stub; ``draw`` fixes every random draw of its faults."""
    opened: list[Connection] = []

    def open_connection(config: StubConfig | None = None, draw: float | None = None) -> Connection:
        rng = random.Random(7) if draw is None else FixedRandom(draw)
        app = ProbeStub(config or StubConfig(token=TOKEN), rng=rng)
        uvicorn_config = uvicorn.Config(
            app,
            http=CoalescingHttpToolsProtocol,
            lifespan="off",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            log_level="warning",
        )
        state = ServerState()
        protocol = CoalescingHttpToolsProtocol(
            config=uvicorn_config,
            server_state=state,
            app_state={},
            _loop=asyncio.get_running_loop(),
        )
        transport = RecordingTransport(protocol)
        protocol.connection_made(transport)  # type: ignore[arg-type]
        connection = Connection(app, protocol, transport, state)
        opened.append(connection)
        return connection

    yield open_connection
    for connection in opened:
        if not connection.transport.ends:
            connection.protocol.connection_lost(None)


async def test_an_answer_leaves_in_one_write_on_every_request_of_a_connection(
    connect: Connect,
) -> None:
    connection: Connection = connect()

    for msg_id in (1, 2, 3):
        await connection.feed(request("POST", f"/v1/send/{msg_id}", send_body(msg_id)))

    assert len(connection.transport.writes) == 3
    for written in connection.transport.writes:
        assert written.startswith(b"HTTP/1.1 200 OK\r\n")
        assert written.endswith(b"\r\n\r\n" + OK_BODY)
    assert connection.transport.ends == []
    assert connection.state.total_requests == 3


async def test_error_and_control_answers_leave_in_one_write_too(connect: Connect) -> None:
    connection: Connection = connect()

    await connection.feed(request("POST", "/v1/send/1", send_body(1), token="wrong"))
    await connection.feed(request("GET", "/nowhere"))
    await connection.feed(request("PUT", "/_stub/config", b'{"error_rate": 1}'))
    await connection.feed(request("POST", "/v1/send/2", send_body(2)))

    statuses = [written[9:12] for written in connection.transport.writes]
    assert statuses[:3] == [b"401", b"404", b"200"]
    assert statuses[3] in {b"500", b"502", b"503"}
    for written in connection.transport.writes:
        head, _, body = written.partition(b"\r\n\r\n")
        assert f"content-length: {len(body)}".encode() in head


async def test_a_streamed_answer_carries_its_head_with_the_first_chunk(connect: Connect) -> None:
    connection: Connection = connect()
    await connection.feed(request("POST", "/v1/send/1", send_body(1)))

    await connection.feed(request("GET", "/_stub/received"))

    first = connection.transport.writes[1]
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked\r\n" in first
    assert b'"outcome":"ok"' in first
    assert b"".join(connection.transport.writes[1:]).endswith(b"\r\n0\r\n\r\n")


async def test_100_continue_leaves_at_once_and_the_answer_after_the_body(
    connect: Connect,
) -> None:
    connection: Connection = connect()
    whole = request("POST", "/v1/send/1", send_body(1), ("expect", "100-continue"))
    head, _, body = whole.partition(b"\r\n\r\n")

    await connection.feed(head + b"\r\n\r\n", answered=False)
    assert connection.transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]

    await connection.feed(body)
    assert len(connection.transport.writes) == 2
    assert connection.transport.writes[1].startswith(b"HTTP/1.1 200 OK\r\n")
    assert connection.transport.writes[1].endswith(OK_BODY)


async def test_the_head_of_an_answer_to_head_is_not_held(connect: Connect) -> None:
    connection: Connection = connect()

    await connection.feed(request("HEAD", "/healthz"))
    await connection.feed(request("GET", "/healthz"))

    [head, answer] = connection.transport.writes
    assert head.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert head.endswith(b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")


async def test_a_midway_reset_sends_the_head_and_part_of_the_body_then_closes(
    connect: Connect,
) -> None:
    connection: Connection = connect(StubConfig(token=TOKEN, reset_rate=1.0), draw=0.0)

    await connection.feed(request("POST", "/v1/send/1", send_body(1)))

    [written] = connection.transport.writes
    assert written.startswith(b"HTTP/1.1 200 OK\r\n")
    assert written.endswith(b"\r\n\r\n" + OK_BODY[:5])
    assert connection.transport.ends[0] == "close"
    assert connection.app.received.record(0)["outcome"] == "reset"
    assert connection.app.received.record(0)["status"] is None


async def test_a_reset_aborts_without_writing(connect: Connect) -> None:
    connection: Connection = connect(StubConfig(token=TOKEN, reset_rate=1.0), draw=0.7)

    await connection.feed(request("POST", "/v1/send/1", send_body(1)))

    assert connection.transport.writes == []
    assert connection.transport.ends[0] == "abort"


@pytest.mark.parametrize("end", ["close", "abort"])
def test_close_and_abort_send_a_held_head_first(end: str) -> None:
    transport = RecordingTransport()
    held = HeadHoldingTransport(transport)  # type: ignore[arg-type]
    held.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert transport.writes == []

    getattr(held, end)()

    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"]
    assert transport.ends == [end]
