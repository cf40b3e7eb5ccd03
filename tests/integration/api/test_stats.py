"""Statistics: counts from mailing_counters, totals over every mailing, error breakdown."""

from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.domain import MessageStatus
from tests.integration.api.factories import add_messages, mailing_body, set_counters

ZERO = {status.value: 0 for status in MessageStatus}


async def test_counts_are_zero_before_dispatch(api: httpx.AsyncClient) -> None:
    mailing_id = (await api.post("/api/v1/mailings", json=mailing_body())).json()["id"]

    stats = (await api.get("/api/v1/stats")).json()
    detail = (await api.get(f"/api/v1/mailings/{mailing_id}/stats")).json()

    assert stats["items"] == [
        {
            "mailing_id": mailing_id,
            "text": "Spring sale",
            "status": "scheduled",
            "counts": ZERO,
            "total": 0,
        }
    ]
    assert stats["totals"] == {**ZERO, "total": 0}
    assert detail == {
        "mailing_id": mailing_id,
        "status": "scheduled",
        "counts": ZERO,
        "total": 0,
        "attempts": 0,
        "first_sent_at": None,
        "last_sent_at": None,
        "errors": [],
    }


async def test_stats_read_the_counters_and_total_over_all_mailings(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ids = [(await api.post("/api/v1/mailings", json=mailing_body())).json()["id"] for _ in range(3)]
    await set_counters(sessionmaker, ids[0], sent=5, failed=1, scheduled=2)
    await set_counters(sessionmaker, ids[1], sent=3, cancelled=4)
    await set_counters(sessionmaker, ids[2], expired=7)

    first = (await api.get("/api/v1/stats", params={"limit": 2})).json()
    second = (
        await api.get("/api/v1/stats", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()

    assert [item["mailing_id"] for item in first["items"] + second["items"]] == ids
    assert first["items"][0]["counts"] == {**ZERO, "sent": 5, "failed": 1, "scheduled": 2}
    assert first["items"][0]["total"] == 8
    assert first["items"][1]["total"] == 7
    expected_totals = {
        **ZERO,
        "sent": 8,
        "failed": 1,
        "scheduled": 2,
        "cancelled": 4,
        "expired": 7,
        "total": 22,
    }
    assert first["totals"] == expected_totals
    assert second["totals"] == expected_totals
    assert second["next_cursor"] is None


async def test_mailing_stats_include_attempts_send_times_and_error_classes(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing_id = (await api.post("/api/v1/mailings", json=mailing_body())).json()["id"]
    first_sent = datetime(2030, 1, 1, 9, tzinfo=UTC)
    last_sent = datetime(2030, 1, 1, 10, tzinfo=UTC)
    await set_counters(
        sessionmaker, mailing_id, sent=2, failed=3, attempts=9,
        first_sent_at=first_sent, last_sent_at=last_sent,
    )  # fmt: skip
    await add_messages(sessionmaker, mailing_id, [MessageStatus.failed] * 2, error_class="http_4xx")
    await add_messages(sessionmaker, mailing_id, [MessageStatus.failed], error_class="timeout")
    await add_messages(sessionmaker, mailing_id, [MessageStatus.sent] * 2)

    detail = (await api.get(f"/api/v1/mailings/{mailing_id}/stats")).json()

    assert detail["counts"] == {**ZERO, "sent": 2, "failed": 3}
    assert detail["total"] == 5
    assert detail["attempts"] == 9
    assert detail["first_sent_at"] == "2030-01-01T09:00:00Z"
    assert detail["last_sent_at"] == "2030-01-01T10:00:00Z"
    assert detail["errors"] == [
        {"error_class": "http_4xx", "count": 2},
        {"error_class": "timeout", "count": 1},
    ]
