"""The stub as a raw ASGI application: the send endpoint with its faults, and the control API.

No framework on purpose: the benchmark pushes thousands of requests per second through
the stub on a machine it shares with herald, so every answer is prebuilt where it can be
and nothing is logged per request.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from functools import lru_cache
from http import HTTPStatus
from typing import Any, Final, Protocol, cast

import orjson

from herald_probe_stub.config import ConfigError, StubConfig
from herald_probe_stub.faults import ERROR_STATUSES, MALFORMED_BODIES, Fault, FaultInjector
from herald_probe_stub.received import Outcome, ReceivedRequests
from herald_probe_stub.record_file import RecordFile
from herald_probe_stub.send_request import SendRequest, parse_send_request

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Response = tuple[Message, Message]
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]

_JSON: Final = (b"content-type", b"application/json")
_NDJSON: Final = (b"content-type", b"application/x-ndjson")
# SO_LINGER on, timeout 0: closing the socket sends a TCP reset instead of a FIN.
_LINGER_RESET: Final = struct.pack("ii", 1, 0)
_RECEIVED_CHUNK: Final = 5000


def _response(status: int, body: bytes, *headers: tuple[bytes, bytes]) -> Response:
    # Prebuilt once and reused: uvicorn copies the header list, it never mutates it.
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers],
    }
    return start, {"type": "http.response.body", "body": body}


def _json_response(status: int, payload: object, *headers: tuple[bytes, bytes]) -> Response:
    return _response(status, orjson.dumps(payload), *headers)


def _api_error(status: int, message: str, *headers: tuple[bytes, bytes]) -> Response:
    return _json_response(status, {"code": status, "message": message}, *headers)


_OK: Final = _json_response(200, {"code": 0, "message": "OK"})
_UNAUTHORIZED: Final = _api_error(401, "Unauthorized", (b"www-authenticate", b"Bearer"))
_RATE_LIMITED: Final = _api_error(429, "Too Many Requests", (b"retry-after", b"1"))
_OUTAGE: Final = _api_error(503, "Service Unavailable")
_NOT_FOUND: Final = _api_error(404, "Not Found")
_ERRORS: Final = {
    status: _api_error(status, HTTPStatus(status).phrase) for status in ERROR_STATUSES
}
_MALFORMED: Final = {body: _response(200, body) for body in MALFORMED_BODIES}
# These answer at once; every other answer waits for the configured latency first.
_IMMEDIATE: Final = frozenset({Outcome.UNAUTHORIZED, Outcome.OUTAGE, Outcome.RATE_LIMITED})


@lru_cache(maxsize=64)
def _bad_request(problem: str) -> Response:
    return _api_error(400, problem)


def _method_not_allowed(allowed: str) -> Response:
    return _api_error(405, "Method Not Allowed", (b"allow", allowed.encode()))


class _Transport(Protocol):
    def abort(self) -> None: ...

    def close(self) -> None: ...

    def get_extra_info(self, name: str, default: Any = None) -> Any: ...


def _transport_of(send: Send) -> _Transport | None:
    # ASGI has no way to drop a connection. uvicorn's send is a bound method of the
    # request cycle, which holds the transport; use it when it is there.
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "abort"):
        return None
    return cast(_Transport, transport)


class ConnectionDroppedError(Exception):
    """Raised after a response has started, so that a server without a reachable transport
    closes the connection itself (it logs the exception)."""


async def _respond(send: Send, response: Response) -> None:
    await send(response[0])
    await send(response[1])


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _client_left_within(receive: Receive, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await _wait_for_disconnect(receive)
    except TimeoutError:
        return False
    return True


async def _drop_connection(receive: Receive, send: Send, *, midway: bool) -> None:
    """Close the connection without a complete answer: a TCP reset, or, ``midway``, a FIN
    after the headers and part of the body."""
    transport = _transport_of(send)
    if midway or transport is None:
        start, body = _OK
        await send(start)
        await send({"type": "http.response.body", "body": body["body"][:5], "more_body": True})
    if transport is None:
        raise ConnectionDroppedError
    if midway:
        transport.close()
    else:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()
    # The server marks the request disconnected when it sees the connection go; waiting
    # for that keeps it from answering 500 in our place.
    await _wait_for_disconnect(receive)


def _authorization(config: StubConfig) -> bytes | None:
    return None if config.token is None else b"Bearer " + config.token.encode()


def _is_authorized(headers: Sequence[tuple[bytes, bytes]], expected: bytes) -> bool:
    for name, value in headers:
        if name == b"authorization":
            # The scheme is case-insensitive (RFC 9110), the token is not.
            return value == expected or (
                value[:7].lower() == b"bearer " and value[7:].strip() == expected[7:]
            )
    return False


class ProbeStub:
    """The ASGI application; ``started_at`` (monotonic) is where outage offsets count from."""

    def __init__(
        self,
        config: StubConfig,
        *,
        rng: random.Random | None = None,
        record_file: RecordFile | None = None,
        started_at: float | None = None,
    ) -> None:
        self.started_at = time.monotonic() if started_at is None else started_at
        self._random = rng if rng is not None else random.Random()
        self._injector = FaultInjector(config, self._random, self.started_at)
        self._authorization = _authorization(config)
        self._received = ReceivedRequests()
        self._in_flight = 0
        self._record_file = record_file
        self._control: dict[str, Handler] = {
            "/healthz": self._healthz,
            "/_stub/stats": self._stats,
            "/_stub/received": self._received_requests,
            "/_stub/config": self._config,
            "/_stub/reset": self._reset,
        }

    @property
    def config(self) -> StubConfig:
        return self._injector.config

    @property
    def received(self) -> ReceivedRequests:
        return self._received

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            control = self._control.get(path)
            if control is not None:
                await control(scope, receive, send)
                return
            _, separator, msg_id = path.rpartition("/send/")
            if separator and msg_id.isdigit() and msg_id.isascii():
                if scope["method"] == "POST":
                    await self._send_message(scope, receive, send, int(msg_id))
                else:
                    await _respond(send, _method_not_allowed("POST"))
                return
            await _respond(send, _NOT_FOUND)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _send_message(self, scope: Scope, receive: Receive, send: Send, path_id: int) -> None:
        received_at = time.time()
        request = parse_send_request(await _read_body(receive), path_id)
        outcome, response = self._answer(scope, request)
        received = self._received
        status = None if response is None else response[0]["status"]
        index = received.add(
            request.msg_id, request.phone, request.text, received_at, outcome, status
        )
        delivered = False
        self._in_flight += 1
        try:
            if outcome is Outcome.HANG:
                # The client is expected to give up first; stop waiting when it does.
                if await _client_left_within(receive, self.config.hang_seconds):
                    return
            elif outcome not in _IMMEDIATE:
                delay = self._injector.latency(self._in_flight - 1)
                if delay > 0:
                    await asyncio.sleep(delay)
            if response is None:
                midway = outcome is Outcome.RESET and self._random.random() < 0.5
                await _drop_connection(receive, send, midway=midway)
            else:
                await _respond(send, response)
                delivered = True
        finally:
            self._in_flight -= 1
            received.answer(index, time.time(), delivered=delivered)
            if self._record_file is not None:
                self._record_file.append(
                    orjson.dumps(received.record(index), option=orjson.OPT_APPEND_NEWLINE)
                )

    def _answer(self, scope: Scope, request: SendRequest) -> tuple[Outcome, Response | None]:
        """What the request meets: auth first, then the faults in order, then its validity.

        A response of None means the connection is dropped instead.
        """
        if self._authorization is not None and not _is_authorized(
            scope["headers"], self._authorization
        ):
            return Outcome.UNAUTHORIZED, _UNAUTHORIZED
        injector = self._injector
        fault = injector.decide(time.monotonic())
        if fault is None:
            if request.problem is None:
                return Outcome.OK, _OK
            return Outcome.BAD_REQUEST, _bad_request(request.problem)
        if fault is Fault.OUTAGE:
            return Outcome.OUTAGE, None if self.config.outage_mode == "reset" else _OUTAGE
        if fault is Fault.RATE_LIMITED:
            return Outcome.RATE_LIMITED, _RATE_LIMITED
        if fault is Fault.HANG:
            return Outcome.HANG, _OK
        if fault is Fault.RESET:
            return Outcome.RESET, None
        if fault is Fault.ERROR:
            return Outcome.ERROR, _ERRORS[injector.error_status()]
        return Outcome.MALFORMED, _MALFORMED[injector.malformed_body()]

    # Control API: unauthenticated, for tests and the benchmark.

    async def _healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "GET":
            await _respond(send, _method_not_allowed("GET"))
            return
        await _respond(send, _json_response(200, {"status": "ok"}))

    async def _stats(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "GET":
            await _respond(send, _method_not_allowed("GET"))
            return
        await _respond(send, _json_response(200, self._stats_payload()))

    def _stats_payload(self) -> dict[str, Any]:
        return {
            **self._received.stats(),
            "cpu_seconds": time.process_time(),
            "uptime_seconds": time.monotonic() - self.started_at,
        }

    async def _received_requests(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "GET":
            await _respond(send, _method_not_allowed("GET"))
            return
        # Streamed in chunks: a million records must not hold the event loop for seconds,
        # nor sit in memory twice. A reset meanwhile swaps the object; this one stays whole.
        received = self._received
        count = len(received)
        await send({"type": "http.response.start", "status": 200, "headers": [_NDJSON]})
        for first in range(0, count, _RECEIVED_CHUNK):
            lines = b"".join(
                orjson.dumps(received.record(index), option=orjson.OPT_APPEND_NEWLINE)
                for index in range(first, min(first + _RECEIVED_CHUNK, count))
            )
            await send({"type": "http.response.body", "body": lines, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})

    async def _config(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "GET":
            await _respond(send, _json_response(200, self.config.to_json(time.monotonic())))
            return
        if method != "PUT":
            await _respond(send, _method_not_allowed("GET, PUT"))
            return
        try:
            changes = orjson.loads(await _read_body(receive))
        except orjson.JSONDecodeError:
            changes = None
        if not isinstance(changes, dict):
            await _respond(send, _api_error(400, "body: must be a JSON object"))
            return
        now = time.monotonic()
        try:
            config = self.config.updated(changes, now)
        except ConfigError as error:
            payload = {"code": 400, "message": str(error), "field": error.field}
            await _respond(send, _json_response(400, payload))
            return
        self.reconfigure(config, now)
        await _respond(send, _json_response(200, config.to_json(now)))

    def reconfigure(self, config: StubConfig, now: float | None = None) -> None:
        self._injector.reconfigure(config, time.monotonic() if now is None else now)
        self._authorization = _authorization(config)

    async def _reset(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await _respond(send, _method_not_allowed("POST"))
            return
        self.clear()
        await _respond(send, _json_response(200, self._stats_payload()))

    def clear(self) -> None:
        """Forget every request; one still in flight finishes in the log it started in."""
        self._received = ReceivedRequests()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self._record_file is not None:
                    self._record_file.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._record_file is not None:
                    await self._record_file.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
