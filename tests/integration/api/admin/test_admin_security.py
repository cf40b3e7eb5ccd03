"""By enumeration: every admin page needs the operator, every unsafe request the CSRF
check; and without a configured identity provider there is no /admin at all."""

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.routing import BaseRoute

from herald_api.admin.auth import current_operator, verify_csrf
from herald_common.db.models import ApiKey, Client, Mailing
from tests.integration.api.admin.conftest import form
from tests.integration.api.admin.factories import add_client, add_mailing, count

Override = Callable[[Callable[..., Any], Callable[..., Any]], None]


def every_route(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from every_route(nested.routes)
        else:
            yield route


def admin_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, concrete path) of every admin page and action."""
    found = []
    for route in every_route(app.routes):
        if isinstance(route, APIRoute) and route.path.startswith("/admin"):
            path = re.sub(r"\{[^}]+\}", "1", route.path)
            found += [(method, path) for method in sorted((route.methods or set()) - {"HEAD"})]
    return found


async def test_every_admin_route_needs_the_operator(
    admin: httpx.AsyncClient, pages_app: FastAPI, override: Override
) -> None:
    async def nobody() -> None:
        raise HTTPException(401, "not logged in")

    override(current_operator, nobody)
    routes = admin_routes(pages_app)

    for method, path in routes:
        response = await admin.request(method, path, data=form())
        assert response.status_code == 401, (method, path, response.text)
    assert len(routes) >= 26


async def test_every_unsafe_admin_route_calls_verify_csrf(
    admin: httpx.AsyncClient,
    pages_app: FastAPI,
    override: Override,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    mailing = await add_mailing(sessionmaker)
    client = await add_client(sessionmaker, 1)
    calls: list[str] = []

    async def refuse() -> None:
        calls.append("refused")
        raise HTTPException(403, "refused by the test")

    override(verify_csrf, refuse)
    unsafe = [(method, path) for method, path in admin_routes(pages_app) if method != "GET"]

    for method, path in unsafe:
        response = await admin.request(method, path, data=form(name="x", phone="79990000002"))
        assert response.status_code == 403, (method, path, response.text)
    assert len(calls) == len(unsafe) >= 10
    # Pages that only read do not ask for it.
    assert (await admin.get("/admin/mailings")).status_code == 200
    assert len(calls) == len(unsafe)
    async with sessionmaker() as session:
        kept = await session.get(Mailing, mailing.id)
        assert kept is not None
        assert kept.cancelled_at is None
        assert await session.get(Client, client.id) is not None
    assert await count(sessionmaker, ApiKey) == 0


async def test_a_form_without_the_token_is_refused_and_changes_nothing(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await add_mailing(sessionmaker)

    forged = await admin.post(f"/admin/mailings/{mailing.id}/delete", data={})
    wrong = await admin.post(
        f"/admin/mailings/{mailing.id}/delete", headers={"X-CSRF-Token": "guessed"}
    )

    assert (forged.status_code, wrong.status_code) == (403, 403)
    async with sessionmaker() as session:
        found = await session.get(Mailing, mailing.id)
    assert found is not None
    assert found.cancelled_at is None
    # The header alone is enough, as htmx sends it from the body's hx-headers.
    htmx = await admin.post(
        f"/admin/mailings/{mailing.id}/delete", headers={"X-CSRF-Token": "test-csrf-token"}
    )
    assert htmx.status_code == 303


async def test_without_a_configured_provider_admin_is_a_404(
    anonymous: httpx.AsyncClient, app: FastAPI
) -> None:
    for path in ("/admin", "/admin/", "/admin/mailings", "/admin/static/admin.js", "/admin/login"):
        response = await anonymous.get(path)
        assert response.status_code == 404, path
    assert admin_routes(app) == []
