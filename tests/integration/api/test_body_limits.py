"""413 over the body limits: by Content-Length up front, and by counting a streamed body."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.app import create_app
from herald_common.db.models import Client
from herald_common.settings import HeraldSettings
from tests.integration.api.conftest import BASE_URL, api_settings
from tests.integration.api.factories import create_api_key

JSON_LIMIT = 1024
IMPORT_LIMIT = 4096


@pytest.fixture(scope="module")
async def small_app(settings: HeraldSettings) -> AsyncIterator[FastAPI]:
    application = create_app(
        api_settings(settings, api_max_body_bytes=JSON_LIMIT, api_max_import_bytes=IMPORT_LIMIT)
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def small_api(
    small_app: FastAPI, clean_db: object, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    key = await create_api_key(sessionmaker, "limits")
    transport = httpx.ASGITransport(app=small_app)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as client:
        yield client


async def _streamed(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
    assert response.headers["X-Correlation-ID"]


async def test_a_json_body_over_the_limit_is_413(small_api: httpx.AsyncClient) -> None:
    body = b'{"phone": "79991234567", "timezone": "UTC", "tag": "' + b"x" * JSON_LIMIT + b'"}'

    response = await small_api.post(
        "/api/v1/clients", content=body, headers={"Content-Type": "application/json"}
    )

    _assert_too_large(response)


async def test_a_streamed_json_body_without_content_length_is_cut_off(
    small_api: httpx.AsyncClient,
) -> None:
    response = await small_api.post(
        "/api/v1/mailings",
        content=_streamed(b'{"text": "', b"x" * 600, b"y" * 600, b'"}'),
        headers={"Content-Type": "application/json"},
    )

    _assert_too_large(response)


async def test_a_json_body_under_the_limit_passes(small_api: httpx.AsyncClient) -> None:
    response = await small_api.post(
        "/api/v1/clients", json={"phone": "79991234567", "timezone": "UTC"}
    )

    assert response.status_code == 201


async def test_the_import_has_its_own_larger_limit(small_api: httpx.AsyncClient) -> None:
    body = b"phone,timezone\n" + b"".join(f"7{n:010d},UTC\n".encode() for n in range(100))
    assert JSON_LIMIT < len(body) < IMPORT_LIMIT

    response = await small_api.post(
        "/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"}
    )

    assert response.status_code == 200
    assert response.json()["created"] == 100


async def test_an_import_over_its_limit_is_413(small_api: httpx.AsyncClient) -> None:
    body = b"phone,timezone\n" + b"79991234567,UTC\n" * 300

    response = await small_api.post(
        "/api/v1/clients/import", content=body, headers={"Content-Type": "text/csv"}
    )

    _assert_too_large(response)


async def test_a_streamed_import_is_cut_off_once_it_passes_the_limit(
    small_api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    rows = [f"7{n:010d},UTC\n".encode() for n in range(400)]

    response = await small_api.post(
        "/api/v1/clients/import",
        content=_streamed(b"phone,timezone\n", *rows),
        headers={"Content-Type": "text/csv"},
    )

    _assert_too_large(response)
    async with sessionmaker() as session:
        # Under the chunk size nothing was committed before the limit hit.
        assert await session.scalar(select(func.count()).select_from(Client)) == 0
