"""Security by enumeration: every route of the app needs a key, except the documented
open ones; and hostile strings are stored verbatim (every value is a bound parameter)."""

import re
from collections.abc import Iterable, Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import BaseRoute

OPEN = {
    "/healthz",
    "/readyz",
    "/docs",
    "/openapi.json",
    "/metrics",
    "/docs/oauth2-redirect",
    "/static",  # the files /docs loads (herald_api.docs)
    "/asyncapi.yaml",  # the broker's message flows, public like /openapi.json
}


def every_route(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The app's routes, through included routers (FastAPI nests them)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from every_route(nested.routes)
        else:
            yield route


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


async def test_every_route_but_the_open_ones_needs_a_key(
    app: FastAPI, anonymous: httpx.AsyncClient
) -> None:
    checked = 0
    routes = list(every_route(app.routes))
    for route in routes:
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", None) or {"GET"}
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            response = await anonymous.request(method, concrete(path), json={})
            if path in OPEN:
                assert response.status_code != 401, (method, path)
            else:
                assert response.status_code == 401, (method, path, response.text)
                assert response.json()["error"]["code"] == "unauthorized"
                checked += 1
    api_routes = [r for r in routes if isinstance(r, APIRoute) and r.path.startswith("/api/")]
    assert checked >= len(api_routes) >= 13


HOSTILE = [
    "'); DROP TABLE clients; --",
    '" OR 1=1 --',
    "$$; DELETE FROM messages; $$",
    ":phone %s %(x)s {0}",
]


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_hostile_strings_are_stored_verbatim(
    api: httpx.AsyncClient, engine: AsyncEngine, hostile: str
) -> None:
    tag = hostile[:64]
    created = await api.post(
        "/api/v1/clients", json={"phone": "79990000001", "timezone": "UTC", "tag": tag}
    )
    assert created.status_code == 201, created.text
    listed = await api.get("/api/v1/clients", params={"tag": tag})
    assert [c["tag"] for c in listed.json()["items"]] == [tag]
    mailing = await api.post(
        "/api/v1/mailings",
        json={
            "text": hostile,
            "start_at": "2030-01-01T00:00:00+00:00",
            "end_at": "2030-01-02T00:00:00+00:00",
            "filter": {"tags": [tag]},
        },
    )
    assert mailing.status_code == 201, mailing.text
    assert (await api.get(f"/api/v1/mailings/{mailing.json()['id']}")).json()["text"] == hostile
    imported = await api.post(
        "/api/v1/clients/import",
        content=f'phone,timezone,tag\n79990000002,UTC,"{tag.replace(chr(34), chr(34) * 2)}"\n',
        headers={"Content-Type": "text/csv"},
    )
    assert imported.json()["created"] == 1, imported.text
    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: sa_inspect(sync).get_table_names())
    assert {"clients", "messages", "mailings"} <= set(tables)
