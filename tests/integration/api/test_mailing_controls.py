"""Pause, resume and cancel a mailing, and delete one for good: status codes, idempotency,
the 409s and their messages, the statuses shown and filtered, the outbox events, the log
lines, and what a deleted mailing leaves (404 everywhere, its messages in the totals)."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.db.models import Mailing
from herald_common.domain import MessageStatus
from tests.integration.api.factories import (
    add_messages,
    iso,
    mailing_body,
    outbox_rows,
    set_counters,
)

MAILINGS = "/api/v1/mailings"
DAY = timedelta(days=1)


def now() -> datetime:
    return datetime.now(UTC)


async def create(api: httpx.AsyncClient, *, start: timedelta, end: timedelta) -> dict[str, Any]:
    """A mailing whose frame is [now + start, now + end)."""
    body = mailing_body(start_at=iso(now() + start), end_at=iso(now() + end))
    response = await api.post(MAILINGS, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def running(api: httpx.AsyncClient) -> dict[str, Any]:
    return await create(api, start=-DAY, end=DAY)


async def row(sessionmaker: async_sessionmaker[AsyncSession], mailing_id: int) -> Mailing:
    async with sessionmaker() as session:
        mailing = await session.get(Mailing, mailing_id)
        assert mailing is not None
        return mailing


async def event_types(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    return [event.event_type for event in await outbox_rows(sessionmaker)]


def conflict(response: httpx.Response) -> str:
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "conflict"
    message: str = error["message"]
    return message


async def test_pause_answers_the_paused_mailing_and_a_repeat_the_same(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await running(api)
    url = f"{MAILINGS}/{mailing['id']}"
    correlation_id = uuid.uuid4().hex

    first = await api.post(f"{url}/pause", headers={"X-Correlation-ID": correlation_id})
    second = await api.post(f"{url}/pause")

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["status"] == "paused"
    assert first.json()["paused_at"] is not None
    assert second.json() == first.json()
    assert (await api.get(url)).json() == first.json()
    stored = await row(sessionmaker, mailing["id"])
    assert (stored.revision, stored.correlation_id) == (2, correlation_id)
    events = await outbox_rows(sessionmaker)
    assert [event.event_type for event in events] == ["mailing.created", "mailing.paused"]
    assert events[1].payload["mailing_id"] == mailing["id"]
    assert events[1].payload["revision"] == 2
    assert events[1].correlation_id == correlation_id


async def test_a_scheduled_mailing_can_be_paused_and_resumes_as_scheduled(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await create(api, start=DAY, end=2 * DAY)
    url = f"{MAILINGS}/{mailing['id']}"

    paused = await api.post(f"{url}/pause")
    resumed = await api.post(f"{url}/resume")

    assert paused.json()["status"] == "paused"
    assert resumed.status_code == 200
    assert (resumed.json()["status"], resumed.json()["paused_at"]) == ("scheduled", None)
    assert await event_types(sessionmaker) == [
        "mailing.created",
        "mailing.paused",
        "mailing.resumed",
    ]


async def test_resume_runs_a_paused_mailing_again_and_a_repeat_is_a_409(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await running(api)
    url = f"{MAILINGS}/{mailing['id']}"
    await api.post(f"{url}/pause")

    resumed = await api.post(f"{url}/resume")
    again = await api.post(f"{url}/resume")

    assert resumed.status_code == 200
    assert (resumed.json()["status"], resumed.json()["paused_at"]) == ("running", None)
    assert conflict(again) == f"mailing {mailing['id']} is not paused: it is running"
    assert (await row(sessionmaker, mailing["id"])).revision == 3
    assert await event_types(sessionmaker) == [
        "mailing.created",
        "mailing.paused",
        "mailing.resumed",
    ]


async def test_resuming_a_mailing_never_paused_is_a_409(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    scheduled = await create(api, start=DAY, end=2 * DAY)

    response = await api.post(f"{MAILINGS}/{scheduled['id']}/resume")

    assert conflict(response) == f"mailing {scheduled['id']} is not paused: it is scheduled"
    assert await event_types(sessionmaker) == ["mailing.created"]


async def test_a_finished_mailing_refuses_every_control(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    finished = await create(api, start=-2 * DAY, end=-DAY)
    url = f"{MAILINGS}/{finished['id']}"

    messages = {
        control: conflict(await api.post(f"{url}/{control}"))
        for control in ("pause", "resume", "cancel")
    }

    mailing_id = finished["id"]
    assert messages == {
        "pause": f"mailing {mailing_id} has finished: there is nothing left to pause",
        "resume": f"mailing {mailing_id} has finished: there is nothing left to resume",
        "cancel": f"mailing {mailing_id} has finished: there is nothing left to cancel",
    }
    assert (await api.get(url)).json()["status"] == "finished"
    assert await event_types(sessionmaker) == ["mailing.created"]


async def test_a_mailing_whose_end_passes_while_paused_is_finished(
    api: httpx.AsyncClient,
) -> None:
    mailing = await running(api)
    url = f"{MAILINGS}/{mailing['id']}"
    await api.post(f"{url}/pause")

    ended = await api.patch(url, json={"end_at": iso(now() - timedelta(seconds=1))})

    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "finished"
    assert ended.json()["paused_at"] is not None
    assert conflict(await api.post(f"{url}/resume")) == (
        f"mailing {mailing['id']} has finished: there is nothing left to resume"
    )
    listed = (await api.get(MAILINGS, params={"status": "finished"})).json()["items"]
    assert [item["id"] for item in listed] == [mailing["id"]]
    assert (await api.get(MAILINGS, params={"status": "paused"})).json()["items"] == []


async def test_a_paused_mailing_can_still_change_and_stays_paused(api: httpx.AsyncClient) -> None:
    mailing = await running(api)
    url = f"{MAILINGS}/{mailing['id']}"
    await api.post(f"{url}/pause")

    changed = await api.patch(url, json={"text": "Later, and better"})

    assert changed.status_code == 200
    assert (changed.json()["status"], changed.json()["text"]) == ("paused", "Later, and better")


async def test_cancel_stops_for_good_a_repeat_answers_the_same_and_it_stays_readable(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await running(api)
    url = f"{MAILINGS}/{mailing['id']}"
    await add_messages(sessionmaker, mailing["id"], [MessageStatus.sent] * 2)
    await set_counters(sessionmaker, mailing["id"], sent=2, cancelled=3)

    first = await api.post(f"{url}/cancel")
    second = await api.post(f"{url}/cancel")

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["status"] == "cancelled"
    assert first.json()["cancelled_at"] is not None
    assert second.json() == first.json()
    assert (await api.get(url)).json()["status"] == "cancelled"
    listed = (await api.get(MAILINGS, params={"status": "cancelled"})).json()["items"]
    assert [item["id"] for item in listed] == [mailing["id"]]
    stats = await api.get(f"{url}/stats")
    assert stats.status_code == 200
    assert (stats.json()["status"], stats.json()["counts"]["sent"]) == ("cancelled", 2)
    assert len((await api.get(f"{url}/messages")).json()["items"]) == 2
    assert conflict(await api.post(f"{url}/pause")) == (
        f"mailing {mailing['id']} was cancelled: it cannot be paused"
    )
    assert conflict(await api.post(f"{url}/resume")) == (
        f"mailing {mailing['id']} was cancelled: it cannot be resumed"
    )
    assert (await row(sessionmaker, mailing["id"])).revision == 2
    assert await event_types(sessionmaker) == ["mailing.created", "mailing.cancelled"]


async def test_cancelling_a_paused_mailing_ends_the_pause(api: httpx.AsyncClient) -> None:
    mailing = await running(api)
    url = f"{MAILINGS}/{mailing['id']}"
    await api.post(f"{url}/pause")

    cancelled = await api.post(f"{url}/cancel")

    assert cancelled.status_code == 200
    assert (cancelled.json()["status"], cancelled.json()["paused_at"]) == ("cancelled", None)


async def test_delete_is_a_true_delete_and_the_mailing_is_404_everywhere(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    kept = await running(api)
    mailing = await running(api)
    url = f"{MAILINGS}/{mailing['id']}"
    await add_messages(sessionmaker, mailing["id"], [MessageStatus.sent] * 2)
    await set_counters(sessionmaker, mailing["id"], sent=2, scheduled=3)
    await set_counters(sessionmaker, kept["id"], sent=1)

    deleted = await api.delete(url)

    assert deleted.status_code == 204
    assert deleted.content == b""
    stored = await row(sessionmaker, mailing["id"])
    assert stored.deleted_at is not None
    # Not ended: cancelled too, so that the scheduler and senders stop what is unsent.
    assert stored.cancelled_at is not None
    assert stored.revision == 2
    events = await outbox_rows(sessionmaker)
    assert [event.event_type for event in events] == [
        "mailing.created",
        "mailing.created",
        "mailing.deleted",
    ]
    assert events[2].payload["revision"] == 2
    for method, path in [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/pause"),
        ("POST", "/resume"),
        ("POST", "/cancel"),
        ("GET", "/messages"),
        ("GET", "/stats"),
    ]:
        json = {"text": "x"} if method == "PATCH" else None
        response = await api.request(method, f"{url}{path}", json=json)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"] == {
            "code": "not_found",
            "message": f"no mailing with id {mailing['id']}",
            "fields": [],
        }
    assert [item["id"] for item in (await api.get(MAILINGS)).json()["items"]] == [kept["id"]]
    for status in ("scheduled", "running", "paused", "finished", "cancelled"):
        listed = (await api.get(MAILINGS, params={"status": status})).json()["items"]
        assert mailing["id"] not in [item["id"] for item in listed], status
    # Its messages are history: the totals still count them, though it is not listed.
    stats = (await api.get("/api/v1/stats")).json()
    assert [item["mailing_id"] for item in stats["items"]] == [kept["id"]]
    assert (stats["totals"]["sent"], stats["totals"]["scheduled"]) == (3, 3)
    assert stats["totals"]["total"] == 6
    assert len(await outbox_rows(sessionmaker)) == 3


async def test_deleting_a_cancelled_or_finished_mailing_works_and_cancels_nothing_more(
    api: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    finished = await create(api, start=-2 * DAY, end=-DAY)
    cancelled = await running(api)
    await api.post(f"{MAILINGS}/{cancelled['id']}/cancel")
    cancelled_at = (await row(sessionmaker, cancelled["id"])).cancelled_at

    for mailing in (finished, cancelled):
        assert (await api.delete(f"{MAILINGS}/{mailing['id']}")).status_code == 204

    ended = await row(sessionmaker, finished["id"])
    # What an ended mailing left unsent expires, as it would have: no cancel.
    assert (ended.deleted_at is not None, ended.cancelled_at) == (True, None)
    assert (await row(sessionmaker, cancelled["id"])).cancelled_at == cancelled_at
    assert (await api.get(MAILINGS)).json()["items"] == []


async def test_each_control_is_logged_with_the_api_keys_name(api: httpx.AsyncClient) -> None:
    mailing = await running(api)
    url = f"{MAILINGS}/{mailing['id']}"

    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        for control in ("pause", "resume", "cancel"):
            assert (await api.post(f"{url}/{control}")).status_code == 200
        assert (await api.delete(url)).status_code == 204

    for event, revision in [
        ("mailing.paused", 2),
        ("mailing.resumed", 3),
        ("mailing.cancelled", 4),
        ("mailing.deleted", 5),
    ]:
        [line] = [entry for entry in logs if entry["event"] == event]
        assert line["api_key_name"] == "tests", event
        assert (line["mailing_id"], line["revision"]) == (mailing["id"], revision), event
