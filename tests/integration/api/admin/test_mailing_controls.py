"""The operator controls in the admin UI: buttons by status, on the detail page and in the
list, posting with the CSRF token through the same service as the REST API."""

import re
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.db.models import Mailing
from tests.integration.api.admin.conftest import CSRF_TOKEN, OPERATOR, form
from tests.integration.api.admin.factories import add_mailing, event_types
from tests.integration.api.admin.markup import attribute_values

NOW = datetime.now(UTC)
HOUR = timedelta(hours=1)


async def _mailing(sessionmaker: async_sessionmaker[AsyncSession], mailing_id: int) -> Mailing:
    async with sessionmaker() as session:
        mailing = await session.get(Mailing, mailing_id)
        assert mailing is not None
        return mailing


_POST_FORM = re.compile(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', re.S)


def control_forms(page: str) -> list[str]:
    """The actions of the page's POST forms that carry the CSRF token, in order."""
    token = f'name="csrf_token" value="{CSRF_TOKEN}"'
    return [action for action, body in _POST_FORM.findall(page) if token in body]


async def running(sessionmaker: async_sessionmaker[AsyncSession]) -> Mailing:
    return await add_mailing(sessionmaker, start_at=NOW - HOUR, end_at=NOW + HOUR)


async def test_a_running_mailing_offers_pause_and_cancel(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await running(sessionmaker)

    page = (await admin.get(f"/admin/mailings/{mailing.id}")).text

    base = f"/admin/mailings/{mailing.id}"
    assert f"{base}/pause" in control_forms(page)
    assert f"{base}/resume" not in page
    assert attribute_values(page, "data-control") == ["pause", "cancel"]
    assert f'href="{base}/cancel"' in page
    assert f'href="{base}/edit"' in page
    assert f'href="{base}/delete"' in page


async def test_pause_then_resume_post_through_the_service(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await running(sessionmaker)
    base = f"/admin/mailings/{mailing.id}"

    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        paused = await admin.post(f"{base}/pause", data=form())

    assert paused.status_code == 303
    assert paused.headers["location"] == base
    assert (await _mailing(sessionmaker, mailing.id)).paused_at is not None
    [line] = [entry for entry in logs if entry["event"] == "mailing.paused"]
    assert (line["operator"], line["subject"]) == (OPERATOR.name, OPERATOR.subject)
    page = (await admin.get(base)).text
    assert "status-paused" in page
    assert f"{base}/resume" in control_forms(page)
    assert attribute_values(page, "data-control") == ["resume", "cancel"]

    resumed = await admin.post(f"{base}/resume", data=form())

    assert resumed.status_code == 303
    assert (await _mailing(sessionmaker, mailing.id)).paused_at is None
    assert await event_types(sessionmaker) == [
        "mailing.created",
        "mailing.paused",
        "mailing.resumed",
    ]
    # A second resume (a double click, a stale page) is the service's 409, as a page.
    again = await admin.post(f"{base}/resume", data=form())
    assert again.status_code == 409
    assert f"mailing {mailing.id} is not paused: it is running" in again.text


async def test_cancel_asks_first_then_cancels_and_the_mailing_stays_readable(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await running(sessionmaker)
    base = f"/admin/mailings/{mailing.id}"

    confirm = await admin.get(f"{base}/cancel")

    assert confirm.status_code == 200
    assert f"{base}/cancel" in control_forms(confirm.text)
    assert "Keep it" in confirm.text
    assert (await _mailing(sessionmaker, mailing.id)).cancelled_at is None

    cancelled = await admin.post(f"{base}/cancel", data=form())

    assert cancelled.status_code == 303
    assert cancelled.headers["location"] == base
    assert (await _mailing(sessionmaker, mailing.id)).cancelled_at is not None
    assert await event_types(sessionmaker) == ["mailing.created", "mailing.cancelled"]
    page = (await admin.get(base)).text
    assert "status-cancelled" in page
    assert attribute_values(page, "data-control") == []
    assert f'href="{base}/edit"' not in page
    assert f'href="{base}/delete"' in page


async def test_a_finished_mailing_offers_no_control(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await add_mailing(sessionmaker, start_at=NOW - 2 * HOUR, end_at=NOW - HOUR)

    page = (await admin.get(f"/admin/mailings/{mailing.id}")).text

    assert attribute_values(page, "data-control") == []
    refused = await admin.post(f"/admin/mailings/{mailing.id}/pause", data=form())
    assert refused.status_code == 409
    assert "has finished: there is nothing left to pause" in refused.text


async def test_the_list_offers_each_mailings_controls_in_its_row(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    live = await running(sessionmaker)
    paused = await running(sessionmaker)
    ended = await add_mailing(sessionmaker, start_at=NOW - 2 * HOUR, end_at=NOW - HOUR)
    assert (await admin.post(f"/admin/mailings/{paused.id}/pause", data=form())).status_code == 303

    page = (await admin.get("/admin/mailings")).text

    rows = dict(re.findall(r'<tr data-mailing="(\d+)">(.*?)</tr>', page, re.S))
    assert attribute_values(rows[str(live.id)], "data-control") == ["pause", "cancel"]
    assert attribute_values(rows[str(paused.id)], "data-control") == ["resume", "cancel"]
    assert attribute_values(rows[str(ended.id)], "data-control") == []
    assert control_forms(rows[str(paused.id)]) == [f"/admin/mailings/{paused.id}/resume"]
