"""Bulk import: CSV and NDJSON, line-numbered errors, duplicates, upsert, events per chunk."""

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.clients.importer import CHUNK_ROWS, MAX_ERRORS
from herald_api.validation import PHONE_MESSAGE
from herald_common.db.models import Client
from tests.integration.api.factories import client_body, outbox_rows

IMPORT = "/api/v1/clients/import"
CSV = {"Content-Type": "text/csv"}
DUPLICATES_CSV = (
    b"phone,timezone,tag\n"
    b"79000000001,Asia/Tokyo,new\n"
    b"79000000002,UTC,first\n"
    b"79000000002,UTC,second\n"
)
NDJSON = {"Content-Type": "application/x-ndjson"}


def phone(number: int) -> str:
    return f"7{number:010d}"


async def _import(
    api: httpx.AsyncClient,
    content: bytes | AsyncIterator[bytes],
    headers: dict[str, str],
    **params: Any,
) -> dict[str, Any]:
    response = await api.post(IMPORT, content=content, headers=headers, params=params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    assert result["received"] == (
        result["created"] + result["updated"] + result["duplicates"] + result["invalid"]
    )
    return result


async def _clients(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Client]:
    async with sessionmaker() as session:
        return {client.phone: client for client in (await session.scalars(select(Client))).all()}


async def test_csv_with_columns_in_any_order_creates_clients(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = (
        "\ufefftag,Timezone,phone,operator_code\r\n"
        "vip,Europe/Moscow,79161234567,\r\n"
        ",Asia/Tokyo,79261234567,555\r\n"
        '"quoted, tag",UTC,79361234567,\r\n'
        "\r\n"
    ).encode()

    result = await _import(api, body, CSV)

    assert result == {
        "received": 3, "created": 3, "updated": 0, "duplicates": 0, "invalid": 0,
        "errors": [], "errors_truncated": False,
    }  # fmt: skip
    clients = await _clients(sessionmaker)
    assert (clients["79161234567"].tag, clients["79161234567"].operator_code) == ("vip", "916")
    assert (clients["79261234567"].tag, clients["79261234567"].operator_code) == (None, "555")
    assert clients["79361234567"].tag == "quoted, tag"
    assert clients["79261234567"].timezone == "Asia/Tokyo"


async def test_bad_rows_are_reported_with_line_numbers_and_fields(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = b"\n".join(
        [
            b"phone,timezone,tag",
            b"79161234567,Europe/Moscow,ok",  # line 2
            b"12345,Europe/Moscow,",  # line 3: phone
            b"79161234568,Mars/Base,",  # line 4: timezone
            b"79161234569,UTC",  # line 5: field count
            b"79161234570,UTC," + b"t" * 65,  # line 6: tag
            b"\xff\xfe,UTC,",  # line 7: not UTF-8
            b'"unclosed,UTC,',  # line 8: malformed CSV
            b"",  # line 9: blank, skipped
            b"79161234571,UTC,fine",  # line 10
        ]
    )

    result = await _import(api, body, CSV)

    assert (result["received"], result["created"], result["invalid"]) == (8, 2, 6)
    assert [(error["line"], error["field"]) for error in result["errors"]] == [
        (3, "phone"),
        (4, "timezone"),
        (5, None),
        (6, "tag"),
        (7, None),
        (8, None),
    ]
    assert "expected 3 fields, found 2" in result["errors"][2]["message"]
    assert set(await _clients(sessionmaker)) == {"79161234567", "79161234571"}


async def test_ndjson_rows_follow_the_rules_of_post_clients(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    lines = [
        json.dumps(client_body(1, tag="a")),
        json.dumps({"phone": 79990000002, "timezone": "UTC"}),  # integer phone: accepted
        json.dumps(client_body(3, extra=True)),
        "[1, 2]",
        "{not json",
        json.dumps(client_body(4, timezone=None)),
        json.dumps(client_body(5, operator_code="12")),
    ]

    result = await _import(api, "\n".join(lines).encode(), NDJSON)

    assert (result["received"], result["created"], result["invalid"]) == (7, 2, 5)
    assert [(error["line"], error["field"]) for error in result["errors"]] == [
        (3, "extra"),
        (4, None),
        (5, None),
        (6, "timezone"),
        (7, "operator_code"),
    ]
    assert set(await _clients(sessionmaker)) == {phone(79990000001 - 7 * 10**10), "79990000002"}


async def test_duplicates_without_upsert_are_skipped_and_reported(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await api.post(
        "/api/v1/clients", json={"phone": "79000000001", "timezone": "UTC", "tag": "kept"}
    )
    body = DUPLICATES_CSV

    result = await _import(api, body, CSV)

    assert (result["created"], result["updated"], result["duplicates"]) == (1, 0, 2)
    assert [(error["line"], error["field"]) for error in result["errors"]] == [
        (2, "phone"),
        (4, "phone"),
    ]
    clients = await _clients(sessionmaker)
    assert clients["79000000001"].tag == "kept"
    assert clients["79000000002"].tag == "first"


async def test_upsert_overwrites_existing_clients_and_the_later_line_wins(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await api.post(
        "/api/v1/clients", json={"phone": "79000000001", "timezone": "UTC", "tag": "old"}
    )
    body = DUPLICATES_CSV

    result = await _import(api, body, CSV, upsert="true")

    assert (result["created"], result["updated"], result["duplicates"]) == (1, 1, 1)
    assert [(error["line"], error["field"]) for error in result["errors"]] == [(3, "phone")]
    clients = await _clients(sessionmaker)
    assert (clients["79000000001"].tag, clients["79000000001"].timezone) == ("new", "Asia/Tokyo")
    assert clients["79000000002"].tag == "second"


async def test_each_chunk_commits_with_one_created_and_one_updated_event(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    existing = (
        await api.post("/api/v1/clients", json={"phone": phone(1), "timezone": "UTC"})
    ).json()
    rows = "".join(f"{phone(number)},UTC\n" for number in range(1, CHUNK_ROWS + 11))

    result = await _import(api, f"phone,timezone\n{rows}".encode(), CSV, upsert="true")

    assert (result["created"], result["updated"]) == (CHUNK_ROWS + 9, 1)
    events = [
        (row.event_type, row.payload["client_ids"]) for row in await outbox_rows(sessionmaker)
    ]
    assert [event_type for event_type, _ in events] == [
        "client.created",  # the single POST
        "client.created",  # chunk 1
        "client.updated",  # chunk 1
        "client.created",  # chunk 2
    ]
    assert events[2][1] == [existing["id"]]
    assert len(events[1][1]) == CHUNK_ROWS - 1
    assert len(events[3][1]) == 10
    assert len(set(events[1][1] + events[3][1])) == CHUNK_ROWS + 9


async def test_errors_are_capped(api: httpx.AsyncClient) -> None:
    body = b"phone,timezone\n" + b"bad,UTC\n" * (MAX_ERRORS + 5)

    result = await _import(api, body, CSV)

    assert result["invalid"] == MAX_ERRORS + 5
    assert len(result["errors"]) == MAX_ERRORS
    assert result["errors_truncated"] is True


async def test_a_csv_without_the_required_header_is_422(api: httpx.AsyncClient) -> None:
    for body in (
        b"",
        b"79161234567,UTC\n",
        b"phone,timezone,nickname\n",
        b"phone,phone,timezone\n",
    ):
        response = await api.post(IMPORT, content=body, headers=CSV)
        assert response.status_code == 422, body
        assert response.json()["error"]["fields"][0]["field"] == "header"


async def test_an_unsupported_content_type_is_415(api: httpx.AsyncClient) -> None:
    response = await api.post(IMPORT, content=b"{}", headers={"Content-Type": "application/json"})

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


async def test_an_overlong_line_is_one_invalid_row(api: httpx.AsyncClient) -> None:
    body = b"phone,timezone\n" + b"7" * 100_000 + b",UTC\n" + f"{phone(5)},UTC\n".encode()

    result = await _import(api, body, CSV)

    assert (result["received"], result["created"], result["invalid"]) == (2, 1, 1)
    assert result["errors"][0]["line"] == 2


async def _generated_rows(count: int, chunk_lines: int = 5000) -> AsyncIterator[bytes]:
    """A CSV body produced as it is sent, so the test holds no whole file either."""
    yield b"phone,timezone,tag\n"
    for start in range(0, count, chunk_lines):
        numbers: Iterable[int] = range(start, min(start + chunk_lines, count))
        yield "".join(
            f"{phone(number)},Europe/Moscow,\n" if number % 1000 else f"bad{number},UTC,\n"
            for number in numbers
        ).encode()


@pytest.mark.timeout(120)
async def test_a_200k_row_file_streams_in_with_exact_counts(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    rows = 200_000

    result = await _import(api, _generated_rows(rows), CSV)

    invalid = rows // 1000
    assert (result["received"], result["created"], result["invalid"]) == (
        rows,
        rows - invalid,
        invalid,
    )
    assert result["errors"][0] == {"line": 2, "field": "phone", "message": PHONE_MESSAGE}
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Client)) == rows - invalid
