"""The outbox shares the change's transaction, and old published rows are purged."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.outbox import repository, writer
from herald_common.contracts import ClientsChanged, EventType, MailingChanged
from herald_common.db.models import OutboxEvent
from tests.integration.api.conftest import BASE_URL
from tests.integration.api.factories import client_body, mailing_body, outbox_rows


@pytest.fixture
async def unraised_api(app: FastAPI, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, headers=headers) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "body"), [("/api/v1/clients", client_body()), ("/api/v1/mailings", mailing_body())]
)
async def test_when_the_outbox_write_fails_the_change_is_rolled_back(
    unraised_api: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    body: dict[str, object],
) -> None:
    async def broken_add(
        session: AsyncSession, events: list[MailingChanged | ClientsChanged]
    ) -> None:
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(repository, "add", broken_add)

    failed = await unraised_api.post(path, json=body)
    monkeypatch.undo()
    listed = await unraised_api.get(path)

    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "internal_error"
    assert listed.json()["items"] == []


async def test_old_published_rows_are_purged_and_the_rest_kept(
    clean_db: object, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session, session.begin():
        await writer.record(
            session,
            [writer.clients_changed(EventType.client_created, [number]) for number in range(4)],
        )
    rows = await outbox_rows(sessionmaker)
    now = datetime.now(UTC)
    ages = [timedelta(days=2), timedelta(days=1, minutes=1), timedelta(hours=23), None]
    async with sessionmaker() as session, session.begin():
        for row, age in zip(rows, ages, strict=True):
            published_at = None if age is None else now - age
            await session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.id == row.id)
                .values(published_at=published_at)
            )

    async with sessionmaker() as session, session.begin():
        purged = await repository.purge_published(session, timedelta(days=1), limit=100)

    assert purged == 2
    assert [row.id for row in await outbox_rows(sessionmaker)] == [rows[2].id, rows[3].id]


async def test_requests_are_counted_by_route_template(api: httpx.AsyncClient) -> None:
    labels = {"method": "GET", "route": "/api/v1/clients/{client_id}", "status": "404"}
    before = REGISTRY.get_sample_value("herald_http_requests_total", labels) or 0.0

    await api.get("/api/v1/clients/123")
    await api.get("/api/v1/clients/456")

    assert REGISTRY.get_sample_value("herald_http_requests_total", labels) == before + 2
    latency = REGISTRY.get_sample_value(
        "herald_http_request_duration_seconds_count",
        {"method": "GET", "route": "/api/v1/clients/{client_id}"},
    )
    assert latency is not None
    assert latency >= 2
