"""A method a path does not take is a 405 whose Allow header lists every method it does
take, as the OpenAPI document lists them; a literal path is never taken for an id."""

import re
from typing import Any

import httpx
import pytest

UNUSED_METHOD = "PUT"


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


async def test_a_405_allows_exactly_the_documented_methods_of_every_path(
    api: httpx.AsyncClient,
) -> None:
    spec: dict[str, Any] = (await api.get("/openapi.json")).json()

    for path, item in spec["paths"].items():
        response = await api.request(UNUSED_METHOD, _concrete(path))

        assert response.status_code == 405, (path, response.text)
        assert response.json()["error"]["code"] == "method_not_allowed"
        allowed = set(response.headers["Allow"].split(", "))
        assert allowed == {method.upper() for method in item}, path


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/api/v1/clients/7", "DELETE, GET, PATCH"),
        ("OPTIONS", "/api/v1/clients", "GET, POST"),
        ("OPTIONS", "/api/v1/mailings", "GET, POST"),
        ("OPTIONS", "/api/v1/mailings/7", "DELETE, GET, PATCH"),
        ("DELETE", "/api/v1/stats", "GET"),
        # /clients/import also matches /clients/{client_id}; the literal path wins.
        ("PATCH", "/api/v1/clients/import", "POST"),
        ("GET", "/api/v1/clients/import", "POST"),
        ("POST", "/healthz", "GET"),
    ],
)
async def test_a_405_lists_every_method_of_the_path(
    api: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await api.request(method, path)

    assert response.status_code == 405, response.text
    assert response.headers["Allow"] == allow
    assert response.json()["error"]["message"] == f"{method} is not allowed on {path}"


async def test_allowed_methods_and_unknown_paths_are_left_to_the_router(
    api: httpx.AsyncClient,
) -> None:
    assert (await api.get("/api/v1/clients/7")).status_code == 404
    assert (await api.get("/api/v1/clients/abc")).status_code == 422
    assert (await api.get("/api/v1/nothing-here")).status_code == 404
    assert (await api.post("/nothing-here")).status_code == 404


async def test_a_405_needs_no_key(anonymous: httpx.AsyncClient, api_key: str) -> None:
    # The methods of every path are public anyway, in /openapi.json.
    response = await anonymous.request("OPTIONS", "/api/v1/clients/7")

    assert response.status_code == 405
    assert response.headers["Allow"] == "DELETE, GET, PATCH"
