"""The one outbound call: ``POST {probe_url}/send/{id}`` to the external send API.

Kept behind the small :class:`ProbeClient` interface so that tests and the benchmark can
swap the transport. The client only transports: it reports what came back (or that
nothing did) and leaves judging the answer to :mod:`herald_sender.classification`.

Two transports implement it. :class:`ReqwestProbeClient` (pyreqwest, Rust's reqwest and
hyper) is the default: the HTTP client is most of a sender's CPU, and it is the leanest
(README, Performance); :class:`AiohttpProbeClient` stays as a fallback
(``HERALD_SENDER_TRANSPORT=aiohttp``).
"""

import contextlib
import time
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

import aiohttp
import orjson
from pydantic import SecretStr
from pyreqwest.client import Client as ReqwestClient
from pyreqwest.client import ClientBuilder as ReqwestClientBuilder
from pyreqwest.exceptions import PyreqwestError
from pyreqwest.exceptions import RequestTimeoutError as ReqwestTimeout
from yarl import URL


class Transport(StrEnum):
    """The HTTP client library behind :class:`ProbeClient`."""

    reqwest = "reqwest"
    aiohttp = "aiohttp"


@dataclass(frozen=True, slots=True)
class ProbeResponse:
    """An HTTP answer of the external API."""

    status: int
    body: bytes
    latency: float
    # Raw Retry-After header, when the API sent one (429, 503).
    retry_after: str | None = None


class ProbeTransportError(Exception):
    """No HTTP answer came back."""

    def __init__(self, detail: str, latency: float) -> None:
        super().__init__(detail)
        self.detail = detail
        self.latency = latency


class ProbeTimeout(ProbeTransportError):
    """The request did not complete within its timeout."""


class ProbeConnectionError(ProbeTransportError):
    """The connection failed, was refused, or was reset before a complete answer."""


class ProbeClient(Protocol):
    async def send(
        self,
        message_id: int,
        phone: int,
        text: str,
        # The transport applies the timeout itself (connect + send + read), so that it is
        # reported as ProbeTimeout rather than as a cancellation of the caller.
        timeout: float,  # noqa: ASYNC109
    ) -> ProbeResponse:
        """Send one message; raise a :class:`ProbeTransportError` when no answer came back."""
        ...


class _Endpoint:
    """What both transports send with: the base URL, the headers, the pool's size."""

    def __init__(self, base_url: str, token: SecretStr, *, concurrency: int) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {token.get_secret_value()}",
            "Content-Type": "application/json",
        }
        self._concurrency = concurrency


class AiohttpProbeClient(_Endpoint):
    """:class:`ProbeClient` over one aiohttp session with a bounded keep-alive pool."""

    def __init__(self, base_url: str, token: SecretStr, *, concurrency: int) -> None:
        super().__init__(base_url, token, concurrency=concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "AiohttpProbeClient":
        connector = aiohttp.TCPConnector(
            limit=self._concurrency, limit_per_host=self._concurrency, keepalive_timeout=30
        )
        # No cookie jar: the API is stateless and a jar costs per request.
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), raise_for_status=False
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        message_id: int,
        phone: int,
        text: str,
        timeout: float,  # noqa: ASYNC109 - applied by the transport, see ProbeClient
    ) -> ProbeResponse:
        if self._session is None:
            raise RuntimeError("AiohttpProbeClient is used outside its `async with`")
        # The base URL is the operator's; an id is digits only, so no re-quoting is needed.
        url = URL(f"{self._base}/send/{message_id}", encoded=True)
        body = orjson.dumps({"id": message_id, "phone": phone, "text": text})
        started = time.monotonic()
        try:
            async with self._session.post(
                url,
                data=body,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                payload = await response.read()
                return ProbeResponse(
                    status=response.status,
                    body=payload,
                    latency=time.monotonic() - started,
                    retry_after=response.headers.get("Retry-After"),
                )
        except TimeoutError as error:
            # aiohttp's own timeout errors are TimeoutError subclasses too.
            raise ProbeTimeout(
                f"no answer within {timeout:.3g}s", time.monotonic() - started
            ) from error
        except (aiohttp.ClientError, OSError) as error:
            raise ProbeConnectionError(_describe(error), time.monotonic() - started) from error


class ReqwestProbeClient(_Endpoint):
    """:class:`ProbeClient` over one pyreqwest client with a bounded connection pool."""

    def __init__(self, base_url: str, token: SecretStr, *, concurrency: int) -> None:
        super().__init__(base_url, token, concurrency=concurrency)
        self._client: ReqwestClient | None = None
        # One timedelta per distinct timeout: most requests use the configured one.
        self._timeouts: dict[float, timedelta] = {}

    async def __aenter__(self) -> "ReqwestProbeClient":
        self._client = (
            ReqwestClientBuilder()
            .max_connections(self._concurrency)
            .pool_max_idle_per_host(self._concurrency)
            .pool_idle_timeout(timedelta(seconds=30))
            .default_headers(self._headers)
            .follow_redirects(False)
            .build()
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(PyreqwestError):
                await client.close()

    async def send(
        self,
        message_id: int,
        phone: int,
        text: str,
        timeout: float,  # noqa: ASYNC109 - applied by the transport, see ProbeClient
    ) -> ProbeResponse:
        if self._client is None:
            raise RuntimeError("ReqwestProbeClient is used outside its `async with`")
        body = orjson.dumps({"id": message_id, "phone": phone, "text": text})
        started = time.monotonic()
        try:
            response = (
                await self._client.post(f"{self._base}/send/{message_id}")
                .body_bytes(body)
                .timeout(self._timedelta(timeout))
                .build()
                .send()
            )
            payload = (await response.bytes()).to_bytes()
        except ReqwestTimeout as error:
            raise ProbeTimeout(
                f"no answer within {timeout:.3g}s", time.monotonic() - started
            ) from error
        except PyreqwestError as error:
            raise ProbeConnectionError(_describe(error), time.monotonic() - started) from error
        return ProbeResponse(
            status=response.status,
            body=payload,
            latency=time.monotonic() - started,
            retry_after=response.get_header("Retry-After"),
        )

    def _timedelta(self, seconds: float) -> timedelta:
        delta = self._timeouts.get(seconds)
        if delta is None:
            delta = timedelta(seconds=seconds)
            if len(self._timeouts) < 64:  # the rest are cut short by end_at: rare
                self._timeouts[seconds] = delta
        return delta


def open_probe_client(
    transport: Transport, base_url: str, token: SecretStr, *, concurrency: int
) -> contextlib.AbstractAsyncContextManager[ProbeClient]:
    """The transport's client, to be entered with ``async with``."""
    if transport is Transport.aiohttp:
        return AiohttpProbeClient(base_url, token, concurrency=concurrency)
    return ReqwestProbeClient(base_url, token, concurrency=concurrency)


def _describe(error: BaseException) -> str:
    detail = str(error)
    return f"{type(error).__name__}: {detail}" if detail else type(error).__name__
