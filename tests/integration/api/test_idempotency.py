"""Idempotency-Key on POST /clients, /mailings and /clients/import: replays, mismatches,
requests in flight, races, per-key isolation, expiry, failed first attempts."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_api.app import create_app
from herald_api.clients.importer import CHUNK_ROWS
from herald_api.idempotency import repository
from herald_api.idempotency.service import EXPIRED_PER_SAVE
from herald_common.db.models import ApiKey, Base, Client, IdempotencyKey, Mailing, OutboxEvent
from herald_common.settings import HeraldSettings
from tests.integration.api.conftest import BASE_URL, api_settings
from tests.integration.api.factories import client_body, create_api_key, mailing_body

CLIENTS = "/api/v1/clients"
MAILINGS = "/api/v1/mailings"
IMPORT = "/api/v1/clients/import"
CSV = {"Content-Type": "text/csv"}
REPLAYED = "Idempotent-Replayed"
# Long enough for a request that waited on a lock to show it; a 409 takes milliseconds.
AT_ONCE = 5.0


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


async def count(sessionmaker: async_sessionmaker[AsyncSession], model: type[Base]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def stored_keys(sessionmaker: async_sessionmaker[AsyncSession]) -> list[IdempotencyKey]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(IdempotencyKey))).all())


async def backdate_keys(sessionmaker: async_sessionmaker[AsyncSession], by: timedelta) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(IdempotencyKey).values(created_at=IdempotencyKey.created_at - by)
        )


def csv_body(*numbers: int, header: str = "phone,timezone") -> bytes:
    lines = [header, *(f"7{number:010d},Europe/Moscow" for number in numbers)]
    return ("\n".join(lines) + "\n").encode()


async def in_pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.fixture
async def unraised_api(app: FastAPI, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as client:
        yield client


@pytest.fixture
async def other_api(
    app: FastAPI, api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a second API key, on the same clean database as ``api``."""
    other_key = await create_api_key(sessionmaker, "other")
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {other_key}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as client:
        yield client


# --- replays -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "model", "body"),
    [(CLIENTS, Client, client_body()), (MAILINGS, Mailing, mailing_body())],
)
async def test_a_repeat_gets_the_stored_response_and_creates_nothing(
    api: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    path: str,
    model: type[Base],
    body: dict[str, Any],
) -> None:
    first = await api.post(path, json=body, headers=key("order-1"))
    again = await api.post(path, json=body, headers=key("order-1"))

    assert first.status_code == 201, first.text
    assert REPLAYED not in first.headers
    assert again.status_code == 201
    assert again.headers[REPLAYED] == "true"
    assert again.headers["content-type"] == "application/json"
    assert again.content == first.content
    assert await count(sessionmaker, model) == 1
    assert await count(sessionmaker, OutboxEvent) == 1


async def test_the_replayed_entity_is_the_one_created(api: httpx.AsyncClient) -> None:
    body = mailing_body()
    first = await api.post(MAILINGS, json=body, headers=key("m"))
    again = await api.post(MAILINGS, json=body, headers=key("m"))
    listed = await api.get(MAILINGS)

    assert [item["id"] for item in listed.json()["items"]] == [first.json()["id"]]
    assert again.json()["id"] == first.json()["id"]


async def test_without_a_key_every_post_creates(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = mailing_body()
    first = await api.post(MAILINGS, json=body)
    second = await api.post(MAILINGS, json=body)

    assert (first.status_code, second.status_code) == (201, 201)
    assert REPLAYED not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert await count(sessionmaker, Mailing) == 2
    assert await stored_keys(sessionmaker) == []


# --- mismatches and malformed keys ---------------------------------------------------


async def test_the_same_key_with_a_different_body_is_a_422_naming_the_header(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await api.post(CLIENTS, json=client_body(1), headers=key("k"))
    other = await api.post(CLIENTS, json=client_body(2), headers=key("k"))

    assert other.status_code == 422
    error = other.json()["error"]
    assert error["code"] == "validation_error"
    assert error["fields"][0]["field"] == "Idempotency-Key"
    assert "different request" in error["message"]
    assert await count(sessionmaker, Client) == 1


async def test_the_same_key_on_another_route_is_a_422(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await api.post(CLIENTS, json=client_body(), headers=key("k"))
    other = await api.post(MAILINGS, json=mailing_body(), headers=key("k"))

    assert other.status_code == 422
    assert other.json()["error"]["fields"][0]["field"] == "Idempotency-Key"
    assert await count(sessionmaker, Mailing) == 0


async def test_the_same_body_formatted_otherwise_is_a_different_request(
    api: httpx.AsyncClient,
) -> None:
    """Byte for byte, as documented: a retry resends the same bytes."""
    body = client_body()
    await api.post(CLIENTS, json=body, headers=key("k"))
    spaced = await api.post(
        CLIENTS,
        content=f'{{"phone": "{body["phone"]}", "timezone": "{body["timezone"]}"}}',
        headers={"Content-Type": "application/json", **key("k")},
    )

    assert spaced.status_code == 422


@pytest.mark.parametrize(
    "value",
    [b"", b"x" * 256, b"caf\xe9", b"tab\there", b"del\x7f", b"nul\x00"],
    ids=["empty", "256-chars", "non-ascii", "tab", "del", "nul"],
)
async def test_a_malformed_key_is_a_422_naming_the_header(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], value: bytes
) -> None:
    response = await api.post(CLIENTS, json=client_body(), headers={b"Idempotency-Key": value})

    assert response.status_code == 422, response.text
    assert [field["field"] for field in response.json()["error"]["fields"]] == ["Idempotency-Key"]
    assert await count(sessionmaker, Client) == 0


@pytest.mark.parametrize("value", ["a", "x" * 255, "with inner spaces", "!~{}\"'\\"])
async def test_any_1_to_255_printable_ascii_characters_are_a_key(
    api: httpx.AsyncClient, value: str
) -> None:
    body = client_body()
    first = await api.post(CLIENTS, json=body, headers=key(value))
    again = await api.post(CLIENTS, json=body, headers=key(value))

    assert first.status_code == 201, first.text
    assert again.headers[REPLAYED] == "true"


# --- in flight and races ---------------------------------------------------------------


async def _wait_for_a_blocked_request(engine: AsyncEngine) -> None:
    """Until a request's statement waits on a lock another transaction holds."""
    async with engine.connect() as connection:
        for _ in range(200):
            waiting = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
            )
            if waiting:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("no request is waiting on a lock")


async def test_a_repeat_while_the_first_is_in_flight_is_a_409_at_once(
    api: httpx.AsyncClient, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = client_body()
    # Another transaction inserts the same phone and holds it: the first request's INSERT
    # waits for it, holding its key, until that transaction rolls back.
    async with engine.connect() as blocker:
        await blocker.execute(
            insert(Client).values(phone=body["phone"], operator_code="999", timezone="UTC")
        )
        first = asyncio.create_task(api.post(CLIENTS, json=body, headers=key("k")))
        await _wait_for_a_blocked_request(engine)

        repeat = await asyncio.wait_for(api.post(CLIENTS, json=body, headers=key("k")), AT_ONCE)

        assert not first.done()
        await blocker.rollback()
    created = await first
    replayed = await api.post(CLIENTS, json=body, headers=key("k"))

    assert repeat.status_code == 409
    assert repeat.json()["error"]["code"] == "conflict"
    assert repeat.json()["error"]["fields"][0]["field"] == "Idempotency-Key"
    assert repeat.headers["Retry-After"] == "1"
    assert created.status_code == 201
    assert replayed.headers[REPLAYED] == "true"
    assert replayed.content == created.content
    assert await count(sessionmaker, Client) == 1
    assert await count(sessionmaker, OutboxEvent) == 1


async def test_another_key_is_not_held_up_by_one_in_flight(
    api: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    async with engine.connect() as blocker:
        await blocker.execute(text("LOCK TABLE mailings IN SHARE MODE"))
        first = asyncio.create_task(api.post(MAILINGS, json=mailing_body(), headers=key("a")))
        await _wait_for_a_blocked_request(engine)
        # Its own key is free: it waits on the table like the first, not a 409.
        second = asyncio.create_task(api.post(MAILINGS, json=mailing_body(), headers=key("b")))
        await asyncio.sleep(0.3)
        assert not second.done()
        await blocker.rollback()

    assert (await first).status_code == 201
    assert (await second).status_code == 201


@pytest.mark.parametrize(
    ("path", "model", "body"),
    [(CLIENTS, Client, client_body()), (MAILINGS, Mailing, mailing_body())],
)
async def test_identical_requests_at_once_create_one_entity_and_one_event(
    api: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    path: str,
    model: type[Base],
    body: dict[str, Any],
) -> None:
    responses = await asyncio.gather(
        *(api.post(path, json=body, headers=key("race")) for _ in range(5))
    )

    created = [r for r in responses if r.status_code == 201 and REPLAYED not in r.headers]
    replayed = [r for r in responses if r.status_code == 201 and REPLAYED in r.headers]
    refused = [r for r in responses if r.status_code == 409]
    assert len(created) == 1
    assert len(created) + len(replayed) + len(refused) == len(responses)
    assert all(r.content == created[0].content for r in replayed)
    assert all(r.json()["error"]["fields"][0]["field"] == "Idempotency-Key" for r in refused)
    assert await count(sessionmaker, model) == 1
    assert await count(sessionmaker, OutboxEvent) == 1


# --- per API key, expiry -----------------------------------------------------------------


async def test_keys_are_kept_per_api_key(
    api: httpx.AsyncClient,
    other_api: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    body = mailing_body()
    mine = await api.post(MAILINGS, json=body, headers=key("shared"))
    theirs = await other_api.post(MAILINGS, json=body, headers=key("shared"))
    # Nor is a different body under the other API key's same key a mismatch.
    client_mine = await api.post(CLIENTS, json=client_body(1), headers=key("c"))
    client_theirs = await other_api.post(CLIENTS, json=client_body(2), headers=key("c"))

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert REPLAYED not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert (client_mine.status_code, client_theirs.status_code) == (201, 201)
    assert await count(sessionmaker, Mailing) == 2
    assert await count(sessionmaker, Client) == 2


async def test_an_expired_key_is_as_good_as_new(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = mailing_body()
    first = await api.post(MAILINGS, json=body, headers=key("k"))
    await backdate_keys(sessionmaker, timedelta(days=1, seconds=1))

    again = await api.post(MAILINGS, json=body, headers=key("k"))
    replayed = await api.post(MAILINGS, json=body, headers=key("k"))
    await backdate_keys(sessionmaker, timedelta(days=1, seconds=1))
    different = await api.post(MAILINGS, json=mailing_body(text="Other"), headers=key("k"))

    assert again.status_code == 201
    assert REPLAYED not in again.headers
    assert again.json()["id"] != first.json()["id"]
    # The key now holds the second response.
    assert replayed.json()["id"] == again.json()["id"]
    assert different.status_code == 201
    assert await count(sessionmaker, Mailing) == 3


async def test_the_ttl_is_the_setting(
    settings: HeraldSettings, api_key: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    application = create_app(api_settings(settings, idempotency_key_ttl=1.0))
    body = mailing_body()
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        headers = {"Authorization": f"Bearer {api_key}", **key("k")}
        async with httpx.AsyncClient(
            transport=transport, base_url=BASE_URL, headers=headers
        ) as client:
            first = await client.post(MAILINGS, json=body)
            replayed = await client.post(MAILINGS, json=body)
            await asyncio.sleep(1.2)
            later = await client.post(MAILINGS, json=body)

    assert replayed.headers[REPLAYED] == "true"
    assert REPLAYED not in later.headers
    assert later.json()["id"] != first.json()["id"]


async def test_a_new_key_deletes_a_bounded_batch_of_expired_ones(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session, session.begin():
        api_key_id = await session.scalar(select(ApiKey.id))
        await session.execute(
            insert(IdempotencyKey),
            [
                {
                    "api_key_id": api_key_id,
                    "key": f"old-{number}",
                    "fingerprint": "0" * 64,
                    "status_code": 201,
                    "response_body": "{}",
                    "response_headers": {},
                    "created_at": datetime.now(UTC) - timedelta(days=2),
                }
                for number in range(EXPIRED_PER_SAVE + 50)
            ],
        )

    await api.post(MAILINGS, json=mailing_body(), headers=key("first"))
    after_one = {row.key for row in await stored_keys(sessionmaker)}
    await api.post(MAILINGS, json=mailing_body(), headers=key("second"))
    after_two = {row.key for row in await stored_keys(sessionmaker)}

    assert "first" in after_one
    assert len(after_one - {"first"}) == 50
    # Live keys are kept.
    assert after_two == {"first", "second"}


# --- failed first attempts ---------------------------------------------------------------


async def test_a_failed_first_attempt_is_not_stored_and_the_retry_runs_anew(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = client_body()
    taken = await api.post(CLIENTS, json=body)
    conflict = await api.post(CLIENTS, json=body, headers=key("k"))
    await api.delete(f"{CLIENTS}/{taken.json()['id']}")

    retried = await api.post(CLIENTS, json=body, headers=key("k"))

    assert conflict.status_code == 409
    assert retried.status_code == 201
    assert REPLAYED not in retried.headers


async def test_after_an_invalid_body_the_key_takes_the_corrected_one(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    invalid = await api.post(CLIENTS, json=client_body(phone="123"), headers=key("k"))
    corrected = await api.post(CLIENTS, json=client_body(), headers=key("k"))

    assert invalid.status_code == 422
    assert invalid.json()["error"]["fields"][0]["field"] == "phone"
    assert corrected.status_code == 201
    assert await count(sessionmaker, Client) == 1


async def test_after_a_500_nothing_is_stored_and_the_retry_creates_once(
    unraised_api: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken_save(*_args: object, **_kwargs: object) -> bool:
        raise RuntimeError("database went away")

    body = mailing_body()
    monkeypatch.setattr(repository, "save", broken_save)
    failed = await unraised_api.post(MAILINGS, json=body, headers=key("k"))
    monkeypatch.undo()

    assert failed.status_code == 500
    # The mailing and its event were in the key's transaction: rolled back with it.
    assert await count(sessionmaker, Mailing) == 0
    assert await count(sessionmaker, OutboxEvent) == 0
    assert await stored_keys(sessionmaker) == []

    retried = await unraised_api.post(MAILINGS, json=body, headers=key("k"))

    assert retried.status_code == 201
    assert REPLAYED not in retried.headers
    assert await count(sessionmaker, Mailing) == 1
    assert await count(sessionmaker, OutboxEvent) == 1


# --- the bulk import ---------------------------------------------------------------------


async def test_an_import_repeat_gets_the_stored_result_and_imports_nothing(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = csv_body(1, 2) + b"not-a-phone,UTC\n"
    first = await api.post(IMPORT, content=body, headers={**CSV, **key("imp")})
    # The same bytes in other pieces: the fingerprint does not depend on how they stream.
    again = await api.post(IMPORT, content=in_pieces(body, 7), headers={**CSV, **key("imp")})

    assert first.status_code == 200, first.text
    assert first.json()["created"] == 2
    assert first.json()["invalid"] == 1
    assert again.status_code == 200
    assert again.headers[REPLAYED] == "true"
    assert again.content == first.content
    assert await count(sessionmaker, Client) == 2
    assert await count(sessionmaker, OutboxEvent) == 1


@pytest.mark.parametrize(
    ("content", "headers", "params"),
    [
        (csv_body(1, 2, 3), CSV, {}),
        (csv_body(1, 2), CSV, {"upsert": "true"}),
        (b'{"phone": "70000000001", "timezone": "Europe/Moscow"}\n', {}, {}),
    ],
    ids=["another-body", "another-query", "another-content-type"],
)
async def test_an_import_key_with_a_different_request_is_a_422(
    api: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    content: bytes,
    headers: dict[str, str],
    params: dict[str, str],
) -> None:
    await api.post(IMPORT, content=csv_body(1, 2), headers={**CSV, **key("imp")})
    other = await api.post(
        IMPORT,
        content=content,
        params=params,
        headers={"Content-Type": "application/x-ndjson", **headers, **key("imp")},
    )

    assert other.status_code == 422
    assert other.json()["error"]["fields"][0]["field"] == "Idempotency-Key"
    assert await count(sessionmaker, Client) == 2


async def test_an_import_repeat_while_the_first_streams_is_a_409_at_once(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = csv_body(1, 2)
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield body[:20]
        await release.wait()
        yield body[20:]

    first = asyncio.create_task(
        api.post(IMPORT, content=slow_body(), headers={**CSV, **key("imp")})
    )
    await asyncio.sleep(0.3)
    repeat = await asyncio.wait_for(
        api.post(IMPORT, content=body, headers={**CSV, **key("imp")}), AT_ONCE
    )
    assert not first.done()
    release.set()
    imported = await first
    replayed = await api.post(IMPORT, content=body, headers={**CSV, **key("imp")})

    assert repeat.status_code == 409
    assert repeat.json()["error"]["fields"][0]["field"] == "Idempotency-Key"
    assert imported.status_code == 200
    assert imported.json()["created"] == 2
    assert replayed.headers[REPLAYED] == "true"
    assert replayed.content == imported.content
    assert await count(sessionmaker, Client) == 2


@pytest.mark.parametrize("rows", [CHUNK_ROWS, CHUNK_ROWS + 1], ids=["full-chunks", "last-chunk"])
async def test_a_import_of_many_chunks_is_replayed(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], rows: int
) -> None:
    """Exactly full chunks leave no rows for a last chunk: the result is stored alone."""
    body = csv_body(*range(1, rows + 1))
    first = await api.post(IMPORT, content=body, headers={**CSV, **key("big")})
    again = await api.post(IMPORT, content=body, headers={**CSV, **key("big")})

    assert first.json()["created"] == rows
    assert again.headers[REPLAYED] == "true"
    assert again.content == first.content
    assert await count(sessionmaker, Client) == rows


async def test_an_import_stores_its_key_with_its_last_chunk(
    unraised_api: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken_save(*_args: object, **_kwargs: object) -> bool:
        raise RuntimeError("database went away")

    body = csv_body(1, 2)
    monkeypatch.setattr(repository, "save", broken_save)
    failed = await unraised_api.post(IMPORT, content=body, headers={**CSV, **key("imp")})
    monkeypatch.undo()
    retried = await unraised_api.post(IMPORT, content=body, headers={**CSV, **key("imp")})

    assert failed.status_code == 500
    assert retried.status_code == 200
    # Nothing of the failed attempt was committed, so the retry creates both.
    assert retried.json()["created"] == 2
    assert await count(sessionmaker, OutboxEvent) == 1


async def test_an_import_without_a_key_runs_every_time(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = csv_body(1)
    first = await api.post(IMPORT, content=body, headers=CSV)
    second = await api.post(IMPORT, content=body, headers=CSV)

    assert first.json()["created"] == 1
    assert second.json()["duplicates"] == 1
    assert REPLAYED not in second.headers
    assert await stored_keys(sessionmaker) == []


# --- the document ----------------------------------------------------------------------


async def test_the_three_operations_document_the_header_and_its_answers(
    anonymous: httpx.AsyncClient,
) -> None:
    spec = (await anonymous.get("/openapi.json")).json()
    keyed = {("post", CLIENTS), ("post", MAILINGS), ("post", IMPORT)}

    for path, item in spec["paths"].items():
        for method, operation in item.items():
            names = {parameter["name"] for parameter in operation.get("parameters", [])}
            assert ("Idempotency-Key" in names) == ((method, path) in keyed), (method, path)
    for method, path in keyed:
        operation = spec["paths"][path][method]
        (parameter,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
        assert parameter["in"] == "header"
        assert parameter["required"] is False
        schema = parameter["schema"]["anyOf"][0]
        assert schema["maxLength"] == 255
        assert schema["pattern"] == r"^[!-~]([ -~]*[!-~])?$"
        responses = operation["responses"]
        assert "Idempotency-Key" in responses["409"]["description"]
        assert "Idempotency-Key" in responses["422"]["description"]
        success = responses["201" if path != IMPORT else "200"]
        assert REPLAYED in success["headers"]
