"""Mailings: create, derived status, patch, messages; outbox rows per change. The
operator controls and the delete are in test_mailing_controls.py."""

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.validation import RATE_MESSAGE
from herald_common.db.models import Mailing, MailingCounters
from herald_common.domain import MessageStatus
from tests.integration.api.factories import add_messages, iso, mailing_body, outbox_rows

MAILINGS = "/api/v1/mailings"
NOW = datetime.now(UTC)


async def _mailing_row(sessionmaker: async_sessionmaker[AsyncSession], mailing_id: int) -> Mailing:
    async with sessionmaker() as session:
        mailing = await session.get(Mailing, mailing_id)
        assert mailing is not None
        return mailing


async def test_create_returns_the_mailing(api: httpx.AsyncClient) -> None:
    body = mailing_body(
        start_at="2030-03-01T09:00:00+03:00",
        end_at="2030-03-02T21:00:00+03:00",
        filter={"operator_codes": ["999", "912", "999"], "tags": ["vip"]},
        send_window={"start": "22:00", "end": "06:00"},
    )

    response = await api.post(MAILINGS, json=body)

    assert response.status_code == 201
    mailing = response.json()
    assert mailing["text"] == "Spring sale"
    assert mailing["start_at"] == "2030-03-01T06:00:00Z"
    assert mailing["end_at"] == "2030-03-02T18:00:00Z"
    assert mailing["filter"] == {"operator_codes": ["999", "912"], "tags": ["vip"]}
    assert mailing["send_window"] == {"start": "22:00", "end": "06:00"}
    assert mailing["status"] == "scheduled"
    assert (mailing["paused_at"], mailing["cancelled_at"]) == (None, None)
    assert set(mailing) == {
        "id", "text", "start_at", "end_at", "filter", "send_window", "max_rate", "status",
        "paused_at", "cancelled_at", "created_at", "updated_at",
    }  # fmt: skip
    assert (await api.get(f"{MAILINGS}/{mailing['id']}")).json() == mailing


async def test_create_without_filter_or_window_targets_everyone_at_any_time(
    api: httpx.AsyncClient,
) -> None:
    mailing = (await api.post(MAILINGS, json=mailing_body())).json()

    assert mailing["filter"] == {"operator_codes": None, "tags": None}
    assert mailing["send_window"] is None
    assert mailing["max_rate"] is None


async def test_create_with_a_max_rate_stores_it_and_reads_it_back(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    fractional = (await api.post(MAILINGS, json=mailing_body(max_rate=12.5))).json()
    whole = (await api.post(MAILINGS, json=mailing_body(max_rate=100_000))).json()

    assert fractional["max_rate"] == 12.5
    assert (await api.get(f"{MAILINGS}/{fractional['id']}")).json()["max_rate"] == 12.5
    assert (await _mailing_row(sessionmaker, fractional["id"])).max_rate == 12.5
    # An integer is a number too, and the bound itself is allowed.
    assert whole["max_rate"] == 100_000
    assert (await _mailing_row(sessionmaker, whole["id"])).max_rate == 100_000.0
    listed = (await api.get(MAILINGS)).json()["items"]
    assert [item["max_rate"] for item in listed] == [12.5, 100_000]


async def test_create_inserts_zeroed_counters_stores_the_correlation_id_and_emits_an_event(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    correlation_id = uuid.uuid4().hex
    response = await api.post(
        MAILINGS, json=mailing_body(), headers={"X-Correlation-ID": correlation_id}
    )
    mailing_id = response.json()["id"]

    async with sessionmaker() as session:
        counters = await session.get(MailingCounters, mailing_id)
    assert counters is not None
    assert (counters.scheduled, counters.sent, counters.attempts) == (0, 0, 0)
    assert (await _mailing_row(sessionmaker, mailing_id)).correlation_id == correlation_id
    [event] = await outbox_rows(sessionmaker)
    assert event.event_type == "mailing.created"
    assert event.payload["mailing_id"] == mailing_id
    assert event.payload["revision"] == 1
    assert event.correlation_id == correlation_id


async def test_status_is_derived_and_filterable(api: httpx.AsyncClient) -> None:
    day = timedelta(days=1)
    scheduled = await api.post(
        MAILINGS, json=mailing_body(start_at=iso(NOW + day), end_at=iso(NOW + 2 * day))
    )
    running = await api.post(
        MAILINGS, json=mailing_body(start_at=iso(NOW - day), end_at=iso(NOW + day))
    )
    finished = await api.post(
        MAILINGS, json=mailing_body(start_at=iso(NOW - 2 * day), end_at=iso(NOW - day))
    )
    cancelled = await api.post(
        MAILINGS, json=mailing_body(start_at=iso(NOW - day), end_at=iso(NOW + day))
    )
    await api.post(f"{MAILINGS}/{cancelled.json()['id']}/cancel")
    paused = await api.post(
        MAILINGS, json=mailing_body(start_at=iso(NOW - day), end_at=iso(NOW + day))
    )
    await api.post(f"{MAILINGS}/{paused.json()['id']}/pause")
    deleted = await api.post(
        MAILINGS, json=mailing_body(start_at=iso(NOW - day), end_at=iso(NOW + day))
    )
    await api.delete(f"{MAILINGS}/{deleted.json()['id']}")
    expected = {
        "scheduled": scheduled.json()["id"],
        "running": running.json()["id"],
        "paused": paused.json()["id"],
        "finished": finished.json()["id"],
        "cancelled": cancelled.json()["id"],
    }

    for status, mailing_id in expected.items():
        listed = (await api.get(MAILINGS, params={"status": status})).json()["items"]
        assert [item["id"] for item in listed] == [mailing_id], status
        assert listed[0]["status"] == status
        assert (await api.get(f"{MAILINGS}/{mailing_id}")).json()["status"] == status
    assert [item["id"] for item in (await api.get(MAILINGS)).json()["items"]] == sorted(
        expected.values()
    )


async def test_list_paginates(api: httpx.AsyncClient) -> None:
    ids = [(await api.post(MAILINGS, json=mailing_body())).json()["id"] for _ in range(7)]

    first = (await api.get(MAILINGS, params={"limit": 4})).json()
    second = (await api.get(MAILINGS, params={"limit": 4, "cursor": first["next_cursor"]})).json()

    assert [item["id"] for item in first["items"] + second["items"]] == ids
    assert second["next_cursor"] is None


async def test_patch_bumps_the_revision_and_emits_mailing_updated(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = (await api.post(MAILINGS, json=mailing_body())).json()
    correlation_id = uuid.uuid4().hex

    response = await api.patch(
        f"{MAILINGS}/{created['id']}",
        json={
            "text": "New text",
            "filter": {"tags": ["a"]},
            "send_window": {"start": "09:00", "end": "10:00"},
        },
        headers={"X-Correlation-ID": correlation_id},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["text"] == "New text"
    assert body["filter"] == {"operator_codes": None, "tags": ["a"]}
    assert body["send_window"] == {"start": "09:00", "end": "10:00"}
    assert body["start_at"] == created["start_at"]
    assert body["updated_at"] > created["updated_at"]
    row = await _mailing_row(sessionmaker, created["id"])
    assert row.revision == 2
    assert row.correlation_id == correlation_id
    events = await outbox_rows(sessionmaker)
    assert [event.event_type for event in events] == ["mailing.created", "mailing.updated"]
    assert events[1].payload["revision"] == 2


async def test_patch_with_null_removes_the_filter_and_the_window(api: httpx.AsyncClient) -> None:
    created = (
        await api.post(
            MAILINGS,
            json=mailing_body(
                filter={"tags": ["a"]}, send_window={"start": "09:00", "end": "21:00"}
            ),
        )
    ).json()

    body = (
        await api.patch(f"{MAILINGS}/{created['id']}", json={"filter": None, "send_window": None})
    ).json()

    assert body["filter"] == {"operator_codes": None, "tags": None}
    assert body["send_window"] is None


async def test_patch_sets_changes_and_removes_the_max_rate_each_a_new_revision(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = (await api.post(MAILINGS, json=mailing_body())).json()
    url = f"{MAILINGS}/{created['id']}"

    set_ = (await api.patch(url, json={"max_rate": 50})).json()
    assert set_["max_rate"] == 50
    assert (await _mailing_row(sessionmaker, created["id"])).revision == 2

    changed = (await api.patch(url, json={"max_rate": 0.25})).json()
    assert changed["max_rate"] == 0.25
    assert changed["updated_at"] > set_["updated_at"]

    # Left out: unchanged.
    other = (await api.patch(url, json={"text": "Other text"})).json()
    assert (other["text"], other["max_rate"]) == ("Other text", 0.25)

    removed = (await api.patch(url, json={"max_rate": None})).json()
    assert removed["max_rate"] is None
    assert (await api.get(url)).json()["max_rate"] is None
    row = await _mailing_row(sessionmaker, created["id"])
    assert (row.max_rate, row.revision) == (None, 5)
    events = await outbox_rows(sessionmaker)
    assert [event.event_type for event in events] == ["mailing.created"] + ["mailing.updated"] * 4
    assert [event.payload["revision"] for event in events] == [1, 2, 3, 4, 5]
    assert all(event.payload["mailing_id"] == created["id"] for event in events)


async def test_a_refused_max_rate_changes_nothing(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = (await api.post(MAILINGS, json=mailing_body(max_rate=5))).json()

    response = await api.patch(f"{MAILINGS}/{created['id']}", json={"max_rate": 0})

    assert response.status_code == 422
    assert response.json()["error"]["fields"] == [{"field": "max_rate", "message": RATE_MESSAGE}]
    row = await _mailing_row(sessionmaker, created["id"])
    assert (row.max_rate, row.revision) == (5, 1)
    assert len(await outbox_rows(sessionmaker)) == 1


async def test_patch_validates_the_merged_frame(api: httpx.AsyncClient) -> None:
    created = (
        await api.post(
            MAILINGS,
            json=mailing_body(start_at="2030-01-01T00:00:00Z", end_at="2030-01-02T00:00:00Z"),
        )
    ).json()
    url = f"{MAILINGS}/{created['id']}"

    late_start = await api.patch(url, json={"start_at": "2030-01-03T00:00:00Z"})
    early_end = await api.patch(url, json={"end_at": "2029-12-31T00:00:00Z"})
    moved = await api.patch(
        url, json={"start_at": "2030-01-03T00:00:00Z", "end_at": "2030-01-04T00:00:00Z"}
    )

    assert late_start.status_code == 422
    assert late_start.json()["error"]["fields"][0]["field"] == "start_at"
    assert early_end.status_code == 422
    assert early_end.json()["error"]["fields"][0]["field"] == "end_at"
    assert moved.status_code == 200
    assert moved.json()["start_at"] == "2030-01-03T00:00:00Z"


async def test_patch_of_a_cancelled_mailing_is_a_409(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = (await api.post(MAILINGS, json=mailing_body())).json()
    await api.post(f"{MAILINGS}/{created['id']}/cancel")

    response = await api.patch(f"{MAILINGS}/{created['id']}", json={"text": "again"})

    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "conflict",
        "message": f"mailing {created['id']} was cancelled and cannot change",
        "fields": [],
    }
    assert len(await outbox_rows(sessionmaker)) == 2


async def test_unknown_mailings_are_404(api: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/424242"),
        ("PATCH", "/424242"),
        ("DELETE", "/424242"),
        ("POST", "/424242/pause"),
        ("POST", "/424242/resume"),
        ("POST", "/424242/cancel"),
        ("GET", "/424242/messages"),
        ("GET", "/424242/stats"),
    ]:
        json = {"text": "x"} if method == "PATCH" else None
        response = await api.request(method, f"{MAILINGS}{path}", json=json)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "not_found"


async def test_messages_list_every_ledger_column_filtered_and_paginated(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing_id = (await api.post(MAILINGS, json=mailing_body())).json()["id"]
    statuses = [MessageStatus.sent] * 3 + [MessageStatus.failed] * 2 + [MessageStatus.scheduled]
    ids = await add_messages(sessionmaker, mailing_id, statuses, error_class="http_4xx")

    everything = (await api.get(f"{MAILINGS}/{mailing_id}/messages", params={"limit": 4})).json()
    rest = (
        await api.get(
            f"{MAILINGS}/{mailing_id}/messages",
            params={"limit": 4, "cursor": everything["next_cursor"]},
        )
    ).json()
    failed = (
        await api.get(f"{MAILINGS}/{mailing_id}/messages", params={"status": "failed"})
    ).json()

    assert [item["id"] for item in everything["items"] + rest["items"]] == ids
    assert rest["next_cursor"] is None
    assert [item["id"] for item in failed["items"]] == ids[3:5]
    assert failed["items"][0]["error_class"] == "http_4xx"
    assert set(failed["items"][0]) == {
        "id", "mailing_id", "client_id", "phone", "timezone", "status", "due_at", "attempts",
        "last_error", "error_class", "next_attempt_at", "queued_at", "sent_at", "finished_at",
        "created_at", "updated_at",
    }  # fmt: skip


async def test_messages_of_another_mailing_are_not_listed(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    first = (await api.post(MAILINGS, json=mailing_body())).json()["id"]
    second = (await api.post(MAILINGS, json=mailing_body())).json()["id"]
    await add_messages(sessionmaker, first, [MessageStatus.sent])

    listed = (await api.get(f"{MAILINGS}/{second}/messages")).json()

    assert listed == {"items": [], "next_cursor": None}


async def test_mailing_rows_stay_consistent_with_the_database(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = (await api.post(MAILINGS, json=mailing_body(text="  padded  "))).json()

    async with sessionmaker() as session:
        text = await session.scalar(select(Mailing.text).where(Mailing.id == created["id"]))

    assert text == "  padded  "
    assert created["text"] == "  padded  "
