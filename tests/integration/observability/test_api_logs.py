"""The api's log lines name what a request touched: the access line and the change events."""

from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import pytest
import structlog

from tests.integration.api.factories import client_body, mailing_body

CORRELATION = "obs-test-1"

Entry = MutableMapping[str, Any]


@pytest.fixture
def logs() -> Iterator[list[Entry]]:
    """Log lines as dicts, with the bound context merged in (as the real pipeline does)."""
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as entries:
        yield entries


def lines(logs: list[Entry], event: str) -> list[Entry]:
    return [entry for entry in logs if entry["event"] == event]


def access_line(logs: list[Entry]) -> Entry:
    [line] = lines(logs, "http.request")
    return line


async def test_a_created_client_is_named_by_the_change_line_and_the_access_line(
    api: httpx.AsyncClient, logs: list[Entry]
) -> None:
    response = await api.post(
        "/api/v1/clients", json=client_body(1), headers={"X-Correlation-ID": CORRELATION}
    )

    assert response.status_code == 201, response.text
    client_id = response.json()["id"]
    [created] = lines(logs, "client.created")
    assert created["client_id"] == client_id
    assert created["correlation_id"] == CORRELATION
    access = access_line(logs)
    assert access["client_id"] == client_id
    assert access["correlation_id"] == CORRELATION
    assert (access["method"], access["route"], access["status"]) == ("POST", "/api/v1/clients", 201)
    assert access["api_key_name"] == "tests"


async def test_updates_and_deletes_of_a_client_name_it(api: httpx.AsyncClient) -> None:
    client_id = (await api.post("/api/v1/clients", json=client_body(2))).json()["id"]

    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        assert (
            await api.patch(f"/api/v1/clients/{client_id}", json={"tag": "vip"})
        ).status_code == 200
        assert (await api.delete(f"/api/v1/clients/{client_id}")).status_code == 204

    assert [line["client_id"] for line in lines(logs, "client.updated")] == [client_id]
    assert [line["client_id"] for line in lines(logs, "client.deleted")] == [client_id]
    accesses = lines(logs, "http.request")
    assert [(a["method"], a["client_id"]) for a in accesses] == [
        ("PATCH", client_id),
        ("DELETE", client_id),
    ]


async def test_every_change_of_a_mailing_names_it(api: httpx.AsyncClient) -> None:
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        mailing_id = (await api.post("/api/v1/mailings", json=mailing_body())).json()["id"]
        await api.patch(f"/api/v1/mailings/{mailing_id}", json={"text": "Changed"})
        await api.get(f"/api/v1/mailings/{mailing_id}/stats")
        await api.delete(f"/api/v1/mailings/{mailing_id}")

    for event in ("mailing.created", "mailing.updated", "mailing.deleted"):
        [line] = lines(logs, event)
        assert line["mailing_id"] == mailing_id, event
        assert line["revision"] >= 1
    accesses = lines(logs, "http.request")
    assert [a["method"] for a in accesses] == ["POST", "PATCH", "GET", "DELETE"]
    assert all(a["mailing_id"] == mailing_id for a in accesses), accesses


async def test_a_rejected_request_still_names_the_path_id(
    anonymous: httpx.AsyncClient, logs: list[Entry]
) -> None:
    response = await anonymous.get(
        "/api/v1/mailings/41", headers={"Authorization": "Bearer hk_wrongkey_" + "x" * 40}
    )

    assert response.status_code == 401
    access = access_line(logs)
    assert access["mailing_id"] == 41
    assert access["status"] == 401
    assert access["api_key_name"] is None


async def test_a_bulk_import_names_every_client_in_bounded_lines(
    api: httpx.AsyncClient, logs: list[Entry]
) -> None:
    rows = "".join(f"7988{n:07d},Europe/Moscow\n" for n in range(1500))

    response = await api.post(
        "/api/v1/clients/import",
        content="phone,timezone\n" + rows,
        headers={"Content-Type": "text/csv"},
    )

    assert response.status_code == 200, response.text
    created = lines(logs, "client.created")
    named = [client_id for line in created for client_id in line["client_ids"]]
    assert len(named) == len(set(named)) == 1500
    assert all(len(line["client_ids"]) <= 1000 for line in created)
    assert all(line["count"] == 1500 for line in created)
