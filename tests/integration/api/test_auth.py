"""API keys: what gets a 401, what stays open, and what the access log records."""

import re

import httpx
import pytest
import structlog
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.auth import keys
from herald_common.db.models import ApiKey

PROTECTED = [
    ("GET", "/api/v1/clients"),
    ("POST", "/api/v1/clients"),
    ("GET", "/api/v1/clients/1"),
    ("PATCH", "/api/v1/clients/1"),
    ("DELETE", "/api/v1/clients/1"),
    ("POST", "/api/v1/clients/import"),
    ("GET", "/api/v1/mailings"),
    ("POST", "/api/v1/mailings"),
    ("GET", "/api/v1/mailings/1"),
    ("PATCH", "/api/v1/mailings/1"),
    ("DELETE", "/api/v1/mailings/1"),
    ("GET", "/api/v1/mailings/1/messages"),
    ("GET", "/api/v1/mailings/1/stats"),
    ("GET", "/api/v1/stats"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_api_route_needs_a_key(
    anonymous: httpx.AsyncClient, api_key: str, method: str, path: str
) -> None:
    response = await anonymous.request(method, path, json={})

    _assert_unauthorized(response)


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        "Bearer hk_short_secret",
        "Token hk_abcdefgh_" + "x" * 43,
    ],
    ids=[
        "empty",
        "scheme only",
        "scheme and space",
        "basic",
        "garbage",
        "too short",
        "wrong scheme",
    ],
)
async def test_missing_or_malformed_keys_are_401(
    anonymous: httpx.AsyncClient, api_key: str, authorization: str
) -> None:
    response = await anonymous.get("/api/v1/clients", headers={"Authorization": authorization})

    _assert_unauthorized(response)


async def test_a_well_formed_unknown_key_is_401(anonymous: httpx.AsyncClient, api_key: str) -> None:
    unknown = keys.generate().key

    response = await anonymous.get("/api/v1/clients", headers=_bearer(unknown))

    _assert_unauthorized(response)
    assert response.json()["error"]["message"] == "unknown API key"


async def test_a_known_prefix_with_a_wrong_secret_is_401(
    anonymous: httpx.AsyncClient, api_key: str
) -> None:
    tampered = api_key[:-1] + ("A" if api_key[-1] != "A" else "B")

    response = await anonymous.get("/api/v1/clients", headers=_bearer(tampered))

    _assert_unauthorized(response)


async def test_a_revoked_key_stops_working_at_once(
    anonymous: httpx.AsyncClient, api_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert (await anonymous.get("/api/v1/clients", headers=_bearer(api_key))).status_code == 200
    async with sessionmaker() as session, session.begin():
        await session.execute(update(ApiKey).values(revoked_at=ApiKey.created_at))

    response = await anonymous.get("/api/v1/clients", headers=_bearer(api_key))

    _assert_unauthorized(response)
    assert response.json()["error"]["message"] == "revoked API key"


def _routes_with_a_body(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, concrete path) under /api/v1 that takes a request body."""
    found = []
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        for method in sorted(route.methods or ()):
            if path.startswith("/api/v1/") and method in ("POST", "PATCH", "PUT"):
                found.append((method, re.sub(r"\{[^}]+\}", "1", path)))
    return found


MALFORMED = b'{"phone": "7999'


async def test_nothing_is_parsed_before_authentication(
    app: FastAPI, anonymous: httpx.AsyncClient, api_key: str
) -> None:
    """A malformed body without a key is a 401, not a 422 that describes the endpoint."""
    routes = _routes_with_a_body(app)
    assert len(routes) >= 5

    for method, path in routes:
        for content_type in ("application/json", "text/csv"):
            response = await anonymous.request(
                method, path, content=MALFORMED, headers={"Content-Type": content_type}
            )
            _assert_unauthorized(response)


async def test_a_malformed_body_with_a_key_is_a_422_naming_the_body(
    api: httpx.AsyncClient,
) -> None:
    for method, path in [("POST", "/api/v1/clients"), ("POST", "/api/v1/mailings")]:
        response = await api.request(
            method, path, content=MALFORMED, headers={"Content-Type": "application/json"}
        )

        assert response.status_code == 422, response.text
        [field] = response.json()["error"]["fields"]
        assert field["field"] == "body"
        assert "not valid JSON" in field["message"]


async def test_endpoints_still_get_the_caller_the_middleware_found(
    api: httpx.AsyncClient,
) -> None:
    with structlog.testing.capture_logs() as logs:
        response = await api.post(
            "/api/v1/clients", json={"phone": "79991234567", "timezone": "UTC"}
        )

    assert response.status_code == 201
    [line] = [entry for entry in logs if entry["event"] == "http.request"]
    assert line["api_key_name"] == "tests"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/docs", "/openapi.json"])
async def test_probes_and_docs_are_open(anonymous: httpx.AsyncClient, path: str) -> None:
    response = await anonymous.get(path)

    assert response.status_code == 200


async def test_the_access_log_names_the_key_but_never_shows_it(
    api: httpx.AsyncClient, api_key: str
) -> None:
    with structlog.testing.capture_logs() as logs:
        await api.get("/api/v1/clients/77")

    [line] = [entry for entry in logs if entry["event"] == "http.request"]
    assert line["api_key_name"] == "tests"
    assert line["route"] == "/api/v1/clients/{client_id}"
    assert line["status"] == 404
    assert line["method"] == "GET"
    assert line["latency_ms"] >= 0
    assert api_key not in repr(logs)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _assert_unauthorized(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.json()["error"]["fields"] == []
