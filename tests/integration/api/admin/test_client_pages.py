"""Client pages: search, create, edit and delete through the service, and the import
upload through the REST import's own importer, with its counts and per-line errors."""

import re

import httpx
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.admin import IMPORT_PATH
from herald_api.middleware import BodyLimitMiddleware
from herald_api.settings import ApiSettings
from herald_common.db.models import Client
from tests.integration.api.admin.conftest import form
from tests.integration.api.admin.factories import add_client, count, event_types
from tests.integration.api.admin.markup import attribute_values, field_errors, inputs, links


async def _clients(sessionmaker: async_sessionmaker[AsyncSession]) -> list[Client]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(Client).order_by(Client.id)))


def _listed(page: str) -> list[int]:
    return [int(value) for value in attribute_values(page, "data-client")]


async def test_search_by_phone_prefix_tag_and_operator_code(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    vip = await add_client(sessionmaker, 1, tag="vip")
    other = await add_client(sessionmaker, 2, operator_code="912")
    far = await add_client(sessionmaker, 3, phone="79120000003", tag="vip")

    async def search(**query: str) -> list[int]:
        return _listed((await admin.get("/admin/clients", params=query)).text)

    assert await search() == [vip.id, other.id, far.id]
    assert await search(phone="7999") == [vip.id, other.id]
    assert await search(phone="79990000002") == [other.id]
    assert await search(tag="vip") == [vip.id, far.id]
    assert await search(operator_code="912") == [other.id, far.id]
    assert await search(tag="vip", operator_code="912") == [far.id]
    assert await search(phone="7%") == []  # a wildcard typed is a character


async def test_the_list_pages_by_id(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ids = [(await add_client(sessionmaker, number)).id for number in range(55)]

    first = (await admin.get("/admin/clients", params={"phone": "7999"})).text
    assert _listed(first) == ids[:50]
    [next_link] = [link for link in links(first, "/admin/clients?") if "cursor=" in link]
    assert "phone=7999" in next_link
    assert _listed((await admin.get(next_link)).text) == ids[50:]


async def test_create_goes_through_the_service_and_a_duplicate_phone_shows_beside_it(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = form(phone="79991234567", operator_code="", tag="vip", timezone="Asia/Tokyo")

    created = await admin.post("/admin/clients/new", data=body)

    assert created.status_code == 303
    assert created.headers["location"] == "/admin/clients?phone=79991234567"
    [client] = await _clients(sessionmaker)
    assert (client.phone, client.operator_code, client.tag, client.timezone) == (
        "79991234567",
        "999",  # derived from the phone, as the API does
        "vip",
        "Asia/Tokyo",
    )
    assert await event_types(sessionmaker) == ["client.created"]

    again = await admin.post("/admin/clients/new", data=body)

    assert again.status_code == 422
    assert field_errors(again.text) == {"phone": ["already exists"]}
    assert inputs(again.text)["timezone"] == ["Asia/Tokyo"]
    assert await count(sessionmaker, Client) == 1
    assert await event_types(sessionmaker) == ["client.created"]


async def test_invalid_fields_show_the_apis_messages_and_create_nothing(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    response = await admin.post(
        "/admin/clients/new",
        data=form(phone="8999", operator_code="12", tag="x" * 65, timezone="Nowhere"),
    )

    assert response.status_code == 422
    assert field_errors(response.text) == {
        "phone": ["must be 11 digits starting with 7, e.g. 79991234567"],
        "operator_code": ["must be a string of exactly 3 digits, e.g. '999'"],
        "tag": ["must be a string of 1 to 64 characters"],
        "timezone": ["must be an IANA time zone name, e.g. 'Europe/Moscow'"],
    }
    assert inputs(response.text)["phone"] == ["8999"]
    assert await count(sessionmaker, Client) == 0


async def test_edit_and_delete_go_through_the_service(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    client = await add_client(sessionmaker, 1, tag="vip", operator_code="912")
    shown = inputs((await admin.get(f"/admin/clients/{client.id}/edit")).text)
    assert (shown["phone"], shown["operator_code"], shown["tag"]) == (
        [client.phone],
        ["912"],
        ["vip"],
    )

    edited = await admin.post(
        f"/admin/clients/{client.id}/edit",
        data=form(phone="79120000001", operator_code="", tag="", timezone="UTC"),
    )

    assert edited.status_code == 303
    [changed] = await _clients(sessionmaker)
    # A blank code is derived from the new phone, a blank tag removed.
    assert (changed.phone, changed.operator_code, changed.tag, changed.timezone) == (
        "79120000001",
        "912",
        None,
        "UTC",
    )
    assert await event_types(sessionmaker) == ["client.created", "client.updated"]

    confirm = await admin.get(f"/admin/clients/{client.id}/delete")
    assert "79120000001" in confirm.text
    deleted = await admin.post(f"/admin/clients/{client.id}/delete", data=form())

    assert deleted.status_code == 303
    assert await _clients(sessionmaker) == []
    assert await event_types(sessionmaker) == ["client.created", "client.updated", "client.deleted"]
    assert (await admin.get(f"/admin/clients/{client.id}/edit")).status_code == 404


async def test_the_import_upload_shows_counts_and_each_rejected_line(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_client(sessionmaker, 9)
    csv = (
        "phone,timezone,tag\n"
        "79990000101,Europe/Moscow,vip\n"
        "79990000009,UTC,\n"  # already exists
        "8999,UTC,\n"
        "79990000102,Mars/Base,\n"
        "79990000103,Asia/Tokyo,\n"
    )

    response = await admin.post(
        "/admin/clients/import",
        data=form(format="auto"),
        files={"file": ("clients.csv", csv.encode(), "text/csv")},
    )

    assert response.status_code == 200, response.text
    counts = dict(
        zip(
            attribute_values(response.text, "data-import"),
            [int(n) for n in re.findall(r'data-import="\w+">(\d+)<', response.text)],
            strict=True,
        )
    )
    assert counts == {"received": 5, "created": 2, "updated": 0, "duplicates": 1, "invalid": 2}
    assert attribute_values(response.text, "data-line") == ["3", "4", "5"]
    assert "must be an IANA time zone name" in response.text
    assert "must be 11 digits starting with 7" in response.text
    phones = {client.phone for client in await _clients(sessionmaker)}
    assert phones == {"79990000009", "79990000101", "79990000103"}
    assert (await event_types(sessionmaker))[-1] == "client.created"


async def test_an_ndjson_upload_and_an_unreadable_one(admin: httpx.AsyncClient) -> None:
    ndjson = b'{"phone": "79990000201", "timezone": "UTC"}\nnot json\n'

    done = await admin.post(
        "/admin/clients/import",
        data=form(format="application/x-ndjson", upsert="on"),
        files={"file": ("export.txt", ndjson, "application/octet-stream")},
    )

    assert done.status_code == 200
    assert 'data-import="created">1<' in done.text
    assert attribute_values(done.text, "data-line") == ["2"]

    headerless = await admin.post(
        "/admin/clients/import",
        data=form(format="auto"),
        files={"file": ("clients.csv", b"79990000301,UTC\n", "text/csv")},
    )
    assert headerless.status_code == 422
    assert "the first line must name the columns" in headerless.text

    unknown = await admin.post(
        "/admin/clients/import",
        data=form(format="auto"),
        files={"file": ("clients.xlsx", b"...", "application/octet-stream")},
    )
    assert unknown.status_code == 422
    assert "cannot tell the format of clients.xlsx" in unknown.text


def test_the_upload_takes_the_import_body_limit_not_the_json_one(pages_app: FastAPI) -> None:
    [limits] = [
        middleware.kwargs
        for middleware in pages_app.user_middleware
        if getattr(middleware.cls, "__name__", None) == BodyLimitMiddleware.__name__
    ]
    settings = ApiSettings()
    by_path = limits["limits"]

    assert isinstance(by_path, dict)
    assert by_path[IMPORT_PATH] == settings.api_max_import_bytes
    assert limits["default_limit"] == settings.api_max_body_bytes < settings.api_max_import_bytes
