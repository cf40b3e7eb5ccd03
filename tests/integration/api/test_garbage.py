"""No malformed request gets a 5xx: a battery of garbage against every route and method."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.integration.api.conftest import BASE_URL

PATH_VALUES = ["1", "0", "-1", "abc", "9" * 30, "%00", "1e3", "%F0%9F%92%A9", "1%20", "true"]
BODIES: list[bytes | None] = [
    None,
    b"",
    b"{",
    b"[]",
    b"null",
    b'"x"',
    b"\xff\xfe\xfd",
    b"\x00" * 16,
    b'{"phone": [], "timezone": {}, "text": [], "start_at": 5, "filter": 1}',
    b'{"phone": "7' + b"9" * 400 + b'", "timezone": "' + b"A" * 300 + b'"}',
    b'{"start_at": "0001-01-01T00:00:00+14:00", "end_at": "9999-12-31T23:59:59-14:00",'
    b' "text": "x"}',
    b'{"tag": "\\u0000", "text": "\\ud83d", "phone": "\\ud800"}',
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 2000,
    b"phone,timezone\n" + b"\xff,\x00\n" * 3,
]
CONTENT_TYPES = [None, "application/json", "text/csv", "application/x-ndjson", "text/plain"]
QUERIES: list[dict[str, Any]] = [
    {"limit": "-1"},
    {"limit": "1" * 50},
    {"limit": "nan"},
    {"cursor": "%%%"},
    {"cursor": "\x00"},
    {"cursor": "OTIyMzM3MjAzNjg1NDc3NTgwNw"},
    {"status": "\x00"},
    {"tag": "x" * 500},
    {"operator_code": "\x00\x00\x00"},
    {"upsert": "2"},
    {"limit": ["1", "2"]},
]


@pytest.fixture
async def raw_api(app: FastAPI, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """Server errors come back as responses instead of raising, so that all are collected."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as client:
        yield client


async def _operations(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    spec = (await client.get("/openapi.json")).json()
    return [(method.upper(), path) for path, item in spec["paths"].items() for method in item]


def _fill(path: str, value: str) -> str:
    while "{" in path:
        start = path.index("{")
        path = path[:start] + value + path[path.index("}", start) + 1 :]
    return path


async def test_no_garbage_request_gets_a_server_error(raw_api: httpx.AsyncClient) -> None:
    failures: list[str] = []
    requests: list[tuple[str, str, dict[str, Any]]] = []
    operations = await _operations(raw_api)
    assert len(operations) >= 14
    for method, template in operations:
        requests += [(method, _fill(template, value), {"content": b"{}"}) for value in PATH_VALUES]
        url = _fill(template, "1")
        requests += [(method, url, {"params": params}) for params in QUERIES]
        # GET and DELETE ignore bodies: one garbage body shows it; the rest go to writers.
        bodies = BODIES if method in ("POST", "PATCH") else BODIES[2:3]
        for body in bodies:
            for content_type in CONTENT_TYPES:
                headers = {"Content-Type": content_type} if content_type else {}
                requests.append((method, url, {"content": body, "headers": headers}))
    for method in ("PUT", "POST", "OPTIONS", "TRACE"):
        requests.append((method, "/api/v1/clients/1/nothing", {"content": b"{}"}))
        requests.append((method, "/api/v1/stats", {"content": b"{}"}))
    # A few at a time: bounded by the connection pool, and quicker than one by one.
    limit = asyncio.Semaphore(4)

    async def send(method: str, url: str, kwargs: dict[str, Any]) -> None:
        async with limit:
            response = await raw_api.request(method, url, **kwargs)
        if response.status_code >= 500:
            failures.append(f"{method} {url} {kwargs!r:.200} -> {response.status_code}")
        elif response.status_code >= 400 and set(response.json()) != {"error"}:
            failures.append(f"{method} {url}: not the error shape: {response.text:.200}")

    await asyncio.gather(*(send(*request) for request in requests))

    assert failures == [], f"{len(failures)} of {len(requests)} requests failed"
