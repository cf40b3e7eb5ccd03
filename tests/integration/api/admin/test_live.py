"""The dashboard and the live parts of the pages: totals, the counters that poll while a
mailing can still change and stop once it is final, and sends per minute from the ledger."""

import itertools
import re
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.db.models import MailingCounters, Message
from herald_common.domain import MessageStatus
from tests.integration.api.admin.conftest import form
from tests.integration.api.admin.factories import add_mailing
from tests.integration.api.admin.markup import attribute_values
from tests.integration.api.factories import add_messages, set_counters

POLLING = 'hx-trigger="every 2s'
NOW = datetime.now(UTC)


async def test_the_counters_poll_while_a_mailing_runs_and_stop_once_it_is_final(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    running = await add_mailing(
        sessionmaker, start_at=NOW - timedelta(hours=1), end_at=NOW + timedelta(hours=1)
    )
    ended = await add_mailing(
        sessionmaker, start_at=NOW - timedelta(hours=2), end_at=NOW - timedelta(hours=1)
    )
    await set_counters(sessionmaker, running.id, sent=5, scheduled=3)
    await set_counters(sessionmaker, ended.id, sent=5, scheduled=3)

    for view in ("row", "card"):
        live = await admin.get(f"/admin/mailings/{running.id}/progress", params={"view": view})
        assert live.status_code == 200
        assert POLLING in live.text, view
        assert f'hx-get="/admin/mailings/{running.id}/progress?view={view}"' in live.text
        cell = (
            '<td data-count="sent">5</td>'
            if view == "row"
            else '<strong data-count="sent">5</strong>'
        )
        assert cell in live.text, view
        # Ended, but the scheduler has not expired what is unsent yet: still moving.
        settling = await admin.get(f"/admin/mailings/{ended.id}/progress", params={"view": view})
        assert POLLING in settling.text, view

    await set_counters(sessionmaker, ended.id, scheduled=0, expired=3)
    for view in ("row", "card"):
        final = await admin.get(f"/admin/mailings/{ended.id}/progress", params={"view": view})
        assert final.status_code == 200
        assert POLLING not in final.text, view
        assert "hx-get" not in final.text, view
        assert f'id="progress-{ended.id}"' in final.text
    row = (await admin.get(f"/admin/mailings/{ended.id}/progress", params={"view": "row"})).text
    assert '<td data-count="expired">3</td>' in row
    assert '<progress value="8" max="8"' in row


async def test_a_cancelled_mailing_stops_polling_once_nothing_is_unsent(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await add_mailing(
        sessionmaker, start_at=NOW - timedelta(hours=1), end_at=NOW + timedelta(hours=1)
    )
    cancelled = await admin.post(f"/admin/mailings/{mailing.id}/cancel", data=form())
    assert cancelled.status_code == 303
    await set_counters(sessionmaker, mailing.id, sent=2, cancelled=4)

    card = (await admin.get(f"/admin/mailings/{mailing.id}/progress")).text

    assert "status-cancelled" in card
    assert POLLING not in card


async def test_the_dashboard_shows_totals_and_the_running_and_upcoming_mailings(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    running = await add_mailing(
        sessionmaker, start_at=NOW - timedelta(hours=1), end_at=NOW + timedelta(hours=1)
    )
    upcoming = await add_mailing(sessionmaker, start_at=NOW + timedelta(hours=2))
    ended = await add_mailing(
        sessionmaker, start_at=NOW - timedelta(hours=2), end_at=NOW - timedelta(hours=1)
    )
    await set_counters(sessionmaker, running.id, sent=7, failed=1)
    await set_counters(sessionmaker, ended.id, sent=3, expired=2)

    page = (await admin.get("/admin")).text

    rows = attribute_values(page, "id")
    assert [row for row in rows if row.startswith("progress-")] == [
        f"progress-{running.id}",
        f"progress-{upcoming.id}",
    ]
    totals = tiles(page)
    assert totals["sent"] == 10
    assert totals["expired"] == 2
    assert totals["total"] == 13
    assert '<strong data-mailings="running">1</strong>' in page
    assert '<strong data-mailings="finished">1</strong>' in page
    fragment = (await admin.get("/admin/dashboard/totals")).text
    assert fragment.startswith('<section id="totals"')
    assert POLLING in fragment
    assert '<strong data-count="total">13</strong>' in fragment


def tiles(page: str) -> dict[str, int]:
    """The totals tiles: status (or "total") to count."""
    found = re.findall(r'<strong data-count="(\w+)">(\d+)</strong>', page)
    return {name: int(value) for name, value in found}


async def _sent(
    sessionmaker: async_sessionmaker[AsyncSession], mailing_id: int, moments: list[datetime]
) -> None:
    """Ledger rows sent at these moments, with the counters the ledger writer keeps."""
    ids = await add_messages(sessionmaker, mailing_id, [MessageStatus.sent] * len(moments))
    async with sessionmaker() as session, session.begin():
        for message_id, moment in zip(ids, moments, strict=True):
            await session.execute(
                update(Message).where(Message.id == message_id).values(sent_at=moment)
            )
        await session.execute(
            update(MailingCounters)
            .where(MailingCounters.mailing_id == mailing_id)
            .values(sent=len(moments), first_sent_at=min(moments), last_sent_at=max(moments))
        )


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


async def test_the_chart_data_counts_sends_per_minute_from_the_ledger(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now(UTC)
    two_ago, one_ago = _minute(now) - timedelta(minutes=2), _minute(now) - timedelta(minutes=1)
    first = await add_mailing(sessionmaker, start_at=now - timedelta(hours=6))
    second = await add_mailing(sessionmaker, start_at=now - timedelta(hours=6))
    await _sent(
        sessionmaker,
        first.id,
        [
            two_ago + timedelta(seconds=1),
            two_ago + timedelta(seconds=30),
            two_ago + timedelta(seconds=59),
            one_ago,
            now - timedelta(hours=5),  # outside the last 3 hours
        ],
    )
    await _sent(sessionmaker, second.id, [two_ago + timedelta(seconds=10)] * 2)

    response = await admin.get("/admin/charts/sends", params={"hours": 3})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    chart = response.json()
    minutes = [datetime.fromisoformat(minute) for minute in chart["minutes"]]
    assert len(minutes) == len(chart["counts"]) == 180
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(minutes))
    assert minutes[-1] >= one_ago
    by_minute = dict(zip(minutes, chart["counts"], strict=True))
    assert by_minute[two_ago] == 5
    assert by_minute[one_ago] == 1
    assert sum(chart["counts"]) == 6

    one = (
        await admin.get("/admin/charts/sends", params={"hours": 3, "mailing_id": first.id})
    ).json()
    one_by_minute = dict(
        zip((datetime.fromisoformat(m) for m in one["minutes"]), one["counts"], strict=True)
    )
    assert one_by_minute[two_ago] == 3
    assert sum(one["counts"]) == 4
    wide = (
        await admin.get("/admin/charts/sends", params={"hours": 6, "mailing_id": first.id})
    ).json()
    assert sum(wide["counts"]) == 5


async def test_a_finished_mailings_chart_ends_at_its_last_send(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    last = _minute(NOW - timedelta(days=2))
    mailing = await add_mailing(
        sessionmaker, start_at=last - timedelta(hours=1), end_at=last + timedelta(hours=1)
    )
    await _sent(sessionmaker, mailing.id, [last - timedelta(minutes=30), last])

    chart = (
        await admin.get("/admin/charts/sends", params={"hours": 1, "mailing_id": mailing.id})
    ).json()

    assert datetime.fromisoformat(chart["minutes"][-1]) == last
    assert chart["counts"][-1] == 1
    assert sum(chart["counts"]) == 2


async def test_the_chart_span_is_bounded(admin: httpx.AsyncClient) -> None:
    for hours in (0, 25):
        response = await admin.get("/admin/charts/sends", params={"hours": hours})
        assert response.status_code == 422, hours
    assert (await admin.get("/admin/charts/sends", params={"mailing_id": 999})).status_code == 404
