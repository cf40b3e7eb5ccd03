"""POST /mailings/preview: the audience of a would-be mailing, per time zone, and who never
gets it; validated like a create, and it creates nothing."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.db.models import Mailing, OutboxEvent
from tests.integration.api.factories import client_body, iso, mailing_body

PREVIEW = "/api/v1/mailings/preview"
FRAME = {"start_at": "2030-03-01T06:00:00Z", "end_at": "2030-03-01T12:00:00Z"}


async def _clients(api: httpx.AsyncClient, *bodies: dict[str, Any]) -> None:
    for body in bodies:
        response = await api.post("/api/v1/clients", json=body)
        assert response.status_code == 201, response.text


async def _rows(sessionmaker: async_sessionmaker[AsyncSession], model: type[Any]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_counts_the_matching_clients_per_zone_with_their_first_send(
    api: httpx.AsyncClient,
) -> None:
    await _clients(
        api,
        client_body(1, tag="vip"),
        client_body(2, tag="vip", timezone="Europe/Moscow"),
        client_body(3, tag="vip", timezone="Asia/Tokyo"),
        client_body(4),  # no tag
        client_body(5, tag="new", timezone="Asia/Tokyo"),
    )

    response = await api.post(
        PREVIEW,
        json=mailing_body(
            **FRAME,
            filter={"tags": ["vip"]},
            send_window={"start": "10:00", "end": "11:00"},
        ),
    )

    assert response.status_code == 200, response.text
    preview = response.json()
    assert (preview["matching"], preview["reachable"], preview["never"]) == (3, 2, 1)
    assert preview["zones"] == [
        {
            "timezone": "Europe/Moscow",
            "clients": 2,
            # 10:00 in Moscow (UTC+3), inside 09:00 to 15:00 local.
            "first_send_at": "2030-03-01T07:00:00Z",
            "first_send_local": "2030-03-01T10:00:00+03:00",
        },
        {
            # The frame is 15:00 to 21:00 in Tokyo: the window never opens inside it.
            "timezone": "Asia/Tokyo",
            "clients": 1,
            "first_send_at": None,
            "first_send_local": None,
        },
    ]
    assert datetime.fromisoformat(preview["computed_at"]) <= datetime.now(UTC)


async def test_every_list_of_the_filter_must_match(api: httpx.AsyncClient) -> None:
    await _clients(
        api,
        client_body(1, operator_code="912", tag="vip"),
        client_body(2, operator_code="912", tag="new"),
        client_body(3, tag="vip"),
    )

    def body(**fields: Any) -> dict[str, Any]:
        return mailing_body(**FRAME, **fields)

    async def matching(mailing_filter: dict[str, Any] | None) -> int:
        response = await api.post(PREVIEW, json=body(filter=mailing_filter))
        assert response.status_code == 200, response.text
        count: int = response.json()["matching"]
        return count

    assert await matching(None) == 3
    assert await matching({"operator_codes": ["912"]}) == 2
    assert await matching({"tags": ["vip", "new"]}) == 3
    assert await matching({"operator_codes": ["912"], "tags": ["vip"]}) == 1
    assert await matching({"tags": ["nobody"]}) == 0


async def test_a_started_frame_counts_from_now_and_an_ended_one_reaches_nobody(
    api: httpx.AsyncClient,
) -> None:
    await _clients(api, client_body(1, timezone="UTC"))
    now = datetime.now(UTC)

    started = await api.post(
        PREVIEW,
        json=mailing_body(
            start_at=iso(now - timedelta(hours=1)), end_at=iso(now + timedelta(hours=1))
        ),
    )
    [zone] = started.json()["zones"]
    assert zone["first_send_at"] == started.json()["computed_at"]

    ended = await api.post(
        PREVIEW,
        json=mailing_body(
            start_at=iso(now - timedelta(hours=2)), end_at=iso(now - timedelta(hours=1))
        ),
    )
    assert (ended.json()["matching"], ended.json()["never"]) == (1, 1)
    assert ended.json()["zones"][0]["first_send_at"] is None


async def test_no_clients_is_an_empty_audience(api: httpx.AsyncClient) -> None:
    response = await api.post(PREVIEW, json=mailing_body())

    assert response.status_code == 200
    assert response.json()["matching"] == 0
    assert response.json()["zones"] == []


async def test_the_body_is_validated_as_a_create_and_nothing_is_created(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await _clients(api, client_body(1))
    invalid = mailing_body(
        start_at="2030-03-02T00:00:00Z",
        end_at="2030-03-01T00:00:00Z",
        send_window={"start": "09:00", "end": "09:00"},
    )

    preview = await api.post(PREVIEW, json=invalid)
    create = await api.post("/api/v1/mailings", json=invalid)

    assert preview.status_code == create.status_code == 422
    assert preview.json() == create.json()
    assert (await api.post(PREVIEW, json={**FRAME})).json()["error"]["fields"] == [
        {"field": "text", "message": "this field is required"}
    ]
    assert (await api.post(PREVIEW, json=mailing_body())).status_code == 200
    assert await _rows(sessionmaker, Mailing) == 0
    assert [event.event_type for event in await _outbox(sessionmaker)] == ["client.created"]


async def _outbox(sessionmaker: async_sessionmaker[AsyncSession]) -> list[OutboxEvent]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


async def test_the_preview_needs_a_key_and_is_not_read_as_a_mailing_id(
    anonymous: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    assert (await anonymous.post(PREVIEW, json=mailing_body())).status_code == 401
    wrong_method = await api.get(PREVIEW)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"


async def test_the_preview_is_documented_with_its_response_model(
    anonymous: httpx.AsyncClient,
) -> None:
    spec = (await anonymous.get("/openapi.json")).json()
    operation = spec["paths"][PREVIEW]["post"]

    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/MailingCreate"}
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/AudiencePreview"}
    preview = spec["components"]["schemas"]["AudiencePreview"]
    assert set(preview["properties"]) == {"matching", "reachable", "never", "computed_at", "zones"}
    assert operation["security"] == [{"HTTPBearer": []}]
