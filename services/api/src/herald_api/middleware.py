"""ASGI middleware: correlation ids, the access log, HTTP metrics, and body size limits.

Pure ASGI rather than ``BaseHTTPMiddleware`` so that request bodies keep streaming
and context variables set here are visible to the endpoint.
"""

import time
from collections.abc import Mapping
from typing import Any

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald_api import correlation
from herald_api.errors import PayloadTooLarge, error_response
from herald_common.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = structlog.get_logger()

API_KEY_NAME_STATE = "api_key_name"
# Requests that match no route share one label, so that probes cannot blow up cardinality.
UNMATCHED_ROUTE = "<unmatched>"
# Path parameters that name an entity: bound into the request's log context under these names.
ID_PARAMETERS = ("mailing_id", "client_id")
_MAX_ID_DIGITS = 19  # a bigint


def path_ids(path_params: Mapping[str, Any]) -> dict[str, int]:
    """The entity ids in a request's path, as integers (what is not an id is left out)."""
    ids: dict[str, int] = {}
    for name in ID_PARAMETERS:
        value = path_params.get(name)
        if isinstance(value, int):
            ids[name] = value
        elif (
            isinstance(value, str)
            and value.isascii()
            and value.isdigit()
            and len(value) <= _MAX_ID_DIGITS
        ):
            ids[name] = int(value)
    return ids


async def bind_path_ids(request: Request) -> None:
    """Router dependency: every line a request on ``/mailings/{id}`` or ``/clients/{id}``
    logs names that id."""
    ids = path_ids(request.path_params)
    if ids:
        structlog.contextvars.bind_contextvars(**ids)


class RequestContextMiddleware:
    """Binds the correlation id, echoes it back, and writes one ``http.request`` line.

    The access line carries what the request bound on its way (the ids of the mailing or
    client it touched, the id of a row it created) and the API key's name, never the key.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        correlation_id = correlation.accept_or_generate(
            Headers(scope=scope).get(correlation.HEADER)
        )
        correlation.bind(correlation_id)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
        status = 500

        async def send_with_header(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(correlation.HEADER, correlation_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_header)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", UNMATCHED_ROUTE)
            method = scope["method"]
            HTTP_REQUESTS.labels(method=method, route=template, status=str(status)).inc()
            HTTP_LATENCY.labels(method=method, route=template).observe(elapsed)
            # Also when the request failed before the endpoint (a 401): the path names them.
            ids = path_ids(scope.get("path_params") or {})
            if ids:
                structlog.contextvars.bind_contextvars(**ids)
            log.info(
                "http.request",
                method=method,
                route=template,
                status=status,
                latency_ms=round(elapsed * 1000, 2),
                api_key_name=scope.get("state", {}).get(API_KEY_NAME_STATE),
            )
            structlog.contextvars.clear_contextvars()


class BodyLimitMiddleware:
    """413 for bodies over the limit, counted while they stream, not only by Content-Length.

    ``limits`` maps a path to its own limit (the bulk import); every other path gets
    ``default_limit``.
    """

    def __init__(self, app: ASGIApp, default_limit: int, limits: dict[str, int]) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default_limit)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(scope, receive, send, limit)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except PayloadTooLarge:
            # Normally the exception handlers answer; this covers a limit hit outside them.
            if response_started:
                raise
            await self._reject(scope, receive, send, limit)

    @staticmethod
    async def _reject(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(
            413, "payload_too_large", f"the request body is larger than {limit} bytes"
        )
        await response(scope, receive, send)
