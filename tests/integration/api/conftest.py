"""The api under test: the real app with its lifespan (so the relay runs), over ASGI."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_api.app import create_app
from herald_api.settings import ApiSettings
from herald_common.settings import HeraldSettings
from tests.integration.api.factories import create_api_key

BASE_URL = "http://herald.test"


def api_settings(settings: HeraldSettings, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "database_url": settings.database_url,
        "amqp_url": settings.amqp_url,
        "log_format": "json",
        "outbox_relay_interval": 0.2,
    }
    return ApiSettings(**(values | overrides))


@pytest.fixture(scope="module")
async def app(settings: HeraldSettings) -> AsyncIterator[FastAPI]:
    application = create_app(api_settings(settings))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="module")
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
async def api_key(clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    return await create_api_key(sessionmaker, "tests")


@pytest.fixture
async def api(app: FastAPI, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """An authenticated client on a clean database."""
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as client:
        yield client
