"""API key pages: a new key is shown once and authenticates the REST API; a revoked one
no longer does."""

import re

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.db.models import ApiKey
from tests.integration.api.admin.conftest import form
from tests.integration.api.admin.factories import count
from tests.integration.api.admin.markup import field_errors
from tests.integration.api.conftest import BASE_URL

KEY = re.compile(r"<code id=\"new-key\" data-new-key>(hk_[A-Za-z0-9_-]+)</code>")


async def _rest_status(app: FastAPI, key: str) -> int:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as client:
        return (await client.get("/api/v1/mailings")).status_code


async def test_a_created_key_is_shown_once_and_authenticates_the_rest_api(
    admin: httpx.AsyncClient, pages_app: FastAPI
) -> None:
    created = await admin.post("/admin/api-keys", data=form(name="  billing  "))

    assert created.status_code == 201
    [key] = KEY.findall(created.text)
    assert "billing" in created.text
    assert await _rest_status(pages_app, key) == 200
    listed = await admin.get("/admin/api-keys")
    assert key not in listed.text
    assert f"hk_{key[3:11]}_…" in listed.text  # only its prefix
    assert KEY.findall(listed.text) == []


async def test_a_blank_name_shows_beside_the_field_and_creates_nothing(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    for name in ("   ", "x" * 101):
        response = await admin.post("/admin/api-keys", data=form(name=name))
        assert response.status_code == 422
        assert field_errors(response.text) == {"name": ["must be 1 to 100 characters"]}
    assert await count(sessionmaker, ApiKey) == 0


async def test_revoke_asks_first_then_the_key_stops_working(
    admin: httpx.AsyncClient, pages_app: FastAPI
) -> None:
    [key] = KEY.findall((await admin.post("/admin/api-keys", data=form(name="ci"))).text)
    [key_id] = re.findall(r'data-key="(\d+)"', (await admin.get("/admin/api-keys")).text)

    confirm = await admin.get(f"/admin/api-keys/{key_id}/revoke")
    assert "Revoke API key" in confirm.text
    assert await _rest_status(pages_app, key) == 200

    revoked = await admin.post(f"/admin/api-keys/{key_id}/revoke", data=form())

    assert revoked.status_code == 303
    assert revoked.headers["location"] == "/admin/api-keys"
    assert await _rest_status(pages_app, key) == 401
    listed = (await admin.get("/admin/api-keys")).text
    assert f'href="/admin/api-keys/{key_id}/revoke"' not in listed
    missing = await admin.post("/admin/api-keys/999/revoke", data=form())
    assert missing.status_code == 404
