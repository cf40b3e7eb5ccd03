"""Clients: create, read, update, delete, list; outbox rows in the same transaction."""

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.integration.api.factories import client_body, outbox_rows

CLIENTS = "/api/v1/clients"


async def test_create_returns_the_client_and_defaults_the_operator_code(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post(CLIENTS, json={"phone": "79161234567", "timezone": "Asia/Tokyo"})

    assert response.status_code == 201
    body = response.json()
    assert body["phone"] == "79161234567"
    assert body["operator_code"] == "916"
    assert body["tag"] is None
    assert body["timezone"] == "Asia/Tokyo"
    assert body["created_at"] == body["updated_at"]
    assert (await api.get(f"{CLIENTS}/{body['id']}")).json() == body


@pytest.mark.parametrize("phone", [79161234567, 79161234567.0], ids=["int", "zero fraction"])
async def test_an_integer_phone_is_normalised_to_a_string(
    api: httpx.AsyncClient, phone: float
) -> None:
    # 79161234567.0 is an integer to JSON Schema, so the documented schema allows it.
    response = await api.post(CLIENTS, json={"phone": phone, "timezone": "UTC"})

    assert response.status_code == 201
    assert response.json()["phone"] == "79161234567"


async def test_an_explicit_operator_code_and_tag_are_kept(api: httpx.AsyncClient) -> None:
    response = await api.post(CLIENTS, json=client_body(operator_code="123", tag="vip"))

    assert response.status_code == 201
    assert (response.json()["operator_code"], response.json()["tag"]) == ("123", "vip")


async def test_create_writes_one_client_created_event_with_the_correlation_id(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    correlation_id = f"test-{uuid.uuid4().hex}"
    response = await api.post(
        CLIENTS, json=client_body(), headers={"X-Correlation-ID": correlation_id}
    )

    assert response.headers["X-Correlation-ID"] == correlation_id
    [event] = await outbox_rows(sessionmaker)
    assert event.event_type == "client.created"
    assert event.correlation_id == correlation_id
    assert event.payload["client_ids"] == [response.json()["id"]]
    assert event.payload["type"] == "client.created"
    assert event.payload["id"] == str(event.event_id)
    assert event.payload["correlation_id"] == correlation_id


async def test_an_insane_correlation_id_is_replaced(api: httpx.AsyncClient) -> None:
    response = await api.get(CLIENTS, headers={"X-Correlation-ID": "x" * 65})

    assert len(response.headers["X-Correlation-ID"]) == 32
    assert response.headers["X-Correlation-ID"] != "x" * 65


async def test_a_duplicate_phone_is_a_409_and_writes_no_event(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert (await api.post(CLIENTS, json=client_body())).status_code == 201

    response = await api.post(CLIENTS, json=client_body(timezone="UTC"))

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert response.json()["error"]["fields"][0]["field"] == "phone"
    assert len(await outbox_rows(sessionmaker)) == 1


async def test_concurrent_creates_of_one_phone_give_one_201_and_409s(
    api: httpx.AsyncClient,
) -> None:
    responses = await asyncio.gather(*(api.post(CLIENTS, json=client_body()) for _ in range(5)))

    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409, 409]


async def test_patch_changes_only_the_fields_sent_and_emits_client_updated(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = (await api.post(CLIENTS, json=client_body(tag="old"))).json()

    response = await api.patch(f"{CLIENTS}/{created['id']}", json={"tag": "new"})

    assert response.status_code == 200
    body = response.json()
    assert body["tag"] == "new"
    assert body["phone"] == created["phone"]
    assert body["updated_at"] > created["updated_at"]
    events = await outbox_rows(sessionmaker)
    assert [event.event_type for event in events] == ["client.created", "client.updated"]
    assert events[1].payload["client_ids"] == [created["id"]]


async def test_patch_with_null_tag_removes_it(api: httpx.AsyncClient) -> None:
    created = (await api.post(CLIENTS, json=client_body(tag="vip"))).json()

    response = await api.patch(f"{CLIENTS}/{created['id']}", json={"tag": None})

    assert response.json()["tag"] is None


async def test_patch_of_the_phone_rederives_the_operator_code(api: httpx.AsyncClient) -> None:
    created = (await api.post(CLIENTS, json=client_body())).json()

    changed = await api.patch(f"{CLIENTS}/{created['id']}", json={"phone": "79261234567"})
    explicit = await api.patch(
        f"{CLIENTS}/{created['id']}", json={"phone": "79271234567", "operator_code": "555"}
    )

    assert changed.json()["operator_code"] == "926"
    assert explicit.json()["operator_code"] == "555"


async def test_an_empty_patch_changes_nothing_and_emits_nothing(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = (await api.post(CLIENTS, json=client_body())).json()

    response = await api.patch(f"{CLIENTS}/{created['id']}", json={})

    assert response.json() == created
    assert len(await outbox_rows(sessionmaker)) == 1


async def test_patch_to_a_taken_phone_is_a_409(api: httpx.AsyncClient) -> None:
    await api.post(CLIENTS, json=client_body(1))
    second = (await api.post(CLIENTS, json=client_body(2))).json()

    response = await api.patch(f"{CLIENTS}/{second['id']}", json={"phone": client_body(1)["phone"]})

    assert response.status_code == 409
    assert response.json()["error"]["fields"] == [{"field": "phone", "message": "already exists"}]
    assert (await api.get(f"{CLIENTS}/{second['id']}")).json()["phone"] == second["phone"]


async def test_delete_removes_the_client_and_emits_client_deleted(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = (await api.post(CLIENTS, json=client_body())).json()

    response = await api.delete(f"{CLIENTS}/{created['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert (await api.get(f"{CLIENTS}/{created['id']}")).status_code == 404
    events = await outbox_rows(sessionmaker)
    assert [event.event_type for event in events] == ["client.created", "client.deleted"]
    assert events[1].payload["client_ids"] == [created["id"]]


async def test_unknown_ids_are_404_in_the_error_shape(api: httpx.AsyncClient) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        response = await api.request(
            method, f"{CLIENTS}/987654", json={} if method == "PATCH" else None
        )
        assert response.status_code == 404, method
        assert response.json()["error"]["code"] == "not_found"
        assert "987654" in response.json()["error"]["message"]


async def test_list_walks_every_page_without_gaps_or_repeats(api: httpx.AsyncClient) -> None:
    created = [
        (await api.post(CLIENTS, json=client_body(number))).json()["id"] for number in range(23)
    ]

    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get(CLIENTS, params=params)).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == created
    assert pages == 5


async def test_a_page_of_exactly_limit_items_has_no_next_cursor(api: httpx.AsyncClient) -> None:
    for number in range(3):
        await api.post(CLIENTS, json=client_body(number))

    page = (await api.get(CLIENTS, params={"limit": 3})).json()

    assert len(page["items"]) == 3
    assert page["next_cursor"] is None


async def test_list_filters_by_tag_and_operator_code(api: httpx.AsyncClient) -> None:
    await api.post(CLIENTS, json=client_body(1, tag="vip", operator_code="111"))
    await api.post(CLIENTS, json=client_body(2, tag="vip", operator_code="222"))
    await api.post(CLIENTS, json=client_body(3, operator_code="111"))

    by_tag = (await api.get(CLIENTS, params={"tag": "vip"})).json()["items"]
    by_code = (await api.get(CLIENTS, params={"operator_code": "111"})).json()["items"]
    both = (await api.get(CLIENTS, params={"tag": "vip", "operator_code": "222"})).json()["items"]

    assert [item["phone"][-1] for item in by_tag] == ["1", "2"]
    assert [item["phone"][-1] for item in by_code] == ["1", "3"]
    assert [item["phone"][-1] for item in both] == ["2"]
