"""Mailing pages: the form validates by the API's rules and messages, creates and edits
through the service (outbox events included), deletes, lists, and shows a mailing."""

from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.db.models import Mailing, OutboxEvent
from herald_common.domain import MessageStatus
from tests.integration.api.admin.conftest import form
from tests.integration.api.admin.factories import add_client, add_mailing, count, event_types
from tests.integration.api.admin.markup import attribute_values, field_errors, inputs, links
from tests.integration.api.factories import add_messages, mailing_body, outbox_rows

NEW = "/admin/mailings/new"


def mailing_form(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "text": "Spring sale",
        "start_local": "2030-03-01T09:00",
        "end_local": "2030-03-02T21:00",
        "timezone": "Europe/Moscow",
        "window_start": "",
        "window_end": "",
    }
    return form(**(fields | overrides))


async def _mailing(sessionmaker: async_sessionmaker[AsyncSession], mailing_id: int) -> Mailing:
    async with sessionmaker() as session:
        mailing = await session.get(Mailing, mailing_id)
        assert mailing is not None
        return mailing


async def test_field_errors_show_beside_their_fields_with_the_apis_messages_and_nothing_is_created(
    admin: httpx.AsyncClient,
    api: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    typed = mailing_form(
        text="   ",
        start_local="2030-03-02T09:00",
        end_local="2030-03-01T09:00",
        window_start="09:00",
        window_end="09:00",
        tags=["vip"],
    )

    response = await admin.post(NEW, data=typed)

    assert response.status_code == 422
    shown = field_errors(response.text)
    assert shown == {
        "text": ["must be a non-empty string"],
        "end_local": ["must be after start_at"],
        "window_end": ["must differ from start"],
    }
    # The same body through the REST API: the same rules, the same messages.
    rest = await api.post(
        "/api/v1/mailings",
        json={
            "text": "   ",
            "start_at": "2030-03-02T09:00:00+03:00",
            "end_at": "2030-03-01T09:00:00+03:00",
            "filter": {"tags": ["vip"]},
            "send_window": {"start": "09:00", "end": "09:00"},
        },
    )
    assert rest.status_code == 422
    by_field = {error["field"]: error["message"] for error in rest.json()["error"]["fields"]}
    assert by_field == {
        "text": shown["text"][0],
        "end_at": shown["end_local"][0],
        "send_window.end": shown["window_end"][0],
    }
    # What was typed is shown again.
    kept = inputs(response.text)
    assert kept["text"] == ["   "]
    assert kept["start_local"] == ["2030-03-02T09:00"]
    assert kept["timezone"] == ["Europe/Moscow"]
    assert kept["window_start"] == ["09:00"]
    assert kept["tags"] == ["vip"]
    assert await count(sessionmaker, Mailing) == 0
    assert await count(sessionmaker, OutboxEvent) == 0


async def test_what_only_a_form_has_is_checked_beside_its_field(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    response = await admin.post(
        NEW, data=mailing_form(start_local="soon", end_local="", timezone="Mars/Olympus")
    )

    assert response.status_code == 422
    assert field_errors(response.text) == {
        "timezone": ["must be an IANA time zone name, e.g. 'Europe/Moscow'"],
        "start_local": ["must be a date and time, e.g. 2030-03-01T09:00"],
        "end_local": ["this field is required"],
    }
    assert await count(sessionmaker, Mailing) == 0


async def test_a_valid_form_creates_the_mailing_through_the_service(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_client(sessionmaker, 1, operator_code="912", tag="vip")

    response = await admin.post(
        NEW,
        data=mailing_form(
            operator_codes=["912"], tags=["vip"], window_start="22:00", window_end="06:00"
        ),
    )

    assert response.status_code == 303
    [event] = [
        row for row in await outbox_rows(sessionmaker) if row.event_type.startswith("mailing")
    ]
    assert event.event_type == "mailing.created"
    mailing_id = event.payload["mailing_id"]
    assert response.headers["location"] == f"/admin/mailings/{mailing_id}"
    mailing = await _mailing(sessionmaker, mailing_id)
    # 09:00 and 21:00 in Moscow (UTC+3), stored as instants.
    assert mailing.start_at == datetime(2030, 3, 1, 6, tzinfo=UTC)
    assert mailing.end_at == datetime(2030, 3, 2, 18, tzinfo=UTC)
    assert (mailing.filter_operator_codes, mailing.filter_tags) == (["912"], ["vip"])
    assert (mailing.send_window_start, mailing.send_window_end) == (time(22), time(6))
    # The request's correlation id reaches the row and its event, as through the API.
    assert mailing.correlation_id == event.correlation_id == response.headers["x-correlation-id"]
    detail = await admin.get(response.headers["location"])
    assert "Spring sale" in detail.text


async def test_the_max_rate_is_saved_shown_edited_and_removed_through_the_service(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    assert inputs((await admin.get(NEW)).text)["max_rate"] == [""]

    response = await admin.post(NEW, data=mailing_form(max_rate=" 2.5 "))

    assert response.status_code == 303
    [event] = await outbox_rows(sessionmaker)
    mailing_id = event.payload["mailing_id"]
    assert (await _mailing(sessionmaker, mailing_id)).max_rate == 2.5
    detail = (await admin.get(response.headers["location"])).text
    assert "<td data-max-rate>2.5 messages/s</td>" in detail
    edit = f"/admin/mailings/{mailing_id}/edit"
    assert inputs((await admin.get(edit)).text)["max_rate"] == ["2.5"]

    assert (await admin.post(edit, data=mailing_form(max_rate="40"))).status_code == 303
    assert (await _mailing(sessionmaker, mailing_id)).max_rate == 40
    assert inputs((await admin.get(edit)).text)["max_rate"] == ["40"]

    # Left empty: no limit of its own.
    assert (await admin.post(edit, data=mailing_form(max_rate=""))).status_code == 303
    removed = await _mailing(sessionmaker, mailing_id)
    assert (removed.max_rate, removed.revision) == (None, 3)
    assert await event_types(sessionmaker) == ["mailing.created"] + ["mailing.updated"] * 2
    detail = (await admin.get(f"/admin/mailings/{mailing_id}")).text
    assert "<td data-max-rate>no limit of its own</td>" in detail


async def test_a_bad_max_rate_shows_the_apis_message_beside_the_field(
    admin: httpx.AsyncClient,
    api: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    zero = await admin.post(NEW, data=mailing_form(max_rate="0"))
    word = await admin.post(NEW, data=mailing_form(max_rate="fast"))

    assert zero.status_code == word.status_code == 422
    rest = await api.post("/api/v1/mailings", json=mailing_body(max_rate=0))
    [error] = rest.json()["error"]["fields"]
    assert error["field"] == "max_rate"
    assert field_errors(zero.text) == {"max_rate": [error["message"]]}
    assert field_errors(word.text) == {"max_rate": [error["message"]]}
    assert 'id="max_rate" name="max_rate" value="fast"' in word.text
    assert 'aria-describedby="max_rate-error"' in word.text
    assert await count(sessionmaker, Mailing) == 0

    # Nor does a bad rate change an existing mailing.
    mailing = await add_mailing(sessionmaker, max_rate=3)
    edit = await admin.post(f"/admin/mailings/{mailing.id}/edit", data=mailing_form(max_rate="-1"))
    assert edit.status_code == 422
    assert field_errors(edit.text) == {"max_rate": [error["message"]]}
    unchanged = await _mailing(sessionmaker, mailing.id)
    assert (unchanged.max_rate, unchanged.revision) == (3, 1)


async def test_the_form_offers_the_codes_and_tags_clients_have(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_client(sessionmaker, 1, operator_code="912", tag="vip")
    await add_client(sessionmaker, 2, operator_code="999", tag="new")
    await add_client(sessionmaker, 3, operator_code="912")

    page = (await admin.get(NEW)).text

    assert attribute_values(page, 'name="operator_codes" value') == ["912", "999"]
    assert attribute_values(page, 'name="tags" value') == ["new", "vip"]


async def test_edit_shows_the_mailing_in_the_chosen_zone_and_saves_through_the_service(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await add_mailing(
        sessionmaker,
        start_at=datetime(2030, 3, 1, 6, tzinfo=UTC),
        end_at=datetime(2030, 3, 2, 18, tzinfo=UTC),
        send_window={"start": "09:00", "end": "21:00"},
        filter={"tags": ["vip"]},
    )
    edit = f"/admin/mailings/{mailing.id}/edit"

    shown = inputs((await admin.get(edit, params={"tz": "Europe/Moscow"})).text)
    assert shown["start_local"] == ["2030-03-01T09:00"]
    assert shown["end_local"] == ["2030-03-02T21:00"]
    assert shown["timezone"] == ["Europe/Moscow"]
    assert shown["window_start"] == ["09:00"]
    assert shown["tags"] == ["vip"]

    response = await admin.post(
        edit, data=mailing_form(text="Sale extended", end_local="2030-03-03T21:00")
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/mailings/{mailing.id}"
    changed = await _mailing(sessionmaker, mailing.id)
    assert changed.text == "Sale extended"
    assert changed.end_at == datetime(2030, 3, 3, 18, tzinfo=UTC)
    # Left empty in the form: the window and the filter are removed.
    assert (changed.send_window_start, changed.filter_tags) == (None, None)
    assert changed.revision == 2
    assert await event_types(sessionmaker) == ["mailing.created", "mailing.updated"]


async def test_an_edit_with_errors_changes_nothing(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await add_mailing(sessionmaker)

    response = await admin.post(
        f"/admin/mailings/{mailing.id}/edit", data=mailing_form(start_local="")
    )

    assert response.status_code == 422
    assert field_errors(response.text) == {"start_local": ["this field is required"]}
    assert (await _mailing(sessionmaker, mailing.id)).revision == 1
    assert await event_types(sessionmaker) == ["mailing.created"]


async def test_editing_a_cancelled_mailing_shows_the_services_refusal(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await add_mailing(sessionmaker)
    assert (
        await admin.post(f"/admin/mailings/{mailing.id}/cancel", data=form())
    ).status_code == 303

    response = await admin.post(f"/admin/mailings/{mailing.id}/edit", data=mailing_form())

    assert response.status_code == 422
    assert f"mailing {mailing.id} was cancelled and cannot change" in response.text
    assert await event_types(sessionmaker) == ["mailing.created", "mailing.cancelled"]


async def test_delete_asks_first_then_deletes_through_the_service(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await add_mailing(sessionmaker, text="Winter sale")

    confirm = await admin.get(f"/admin/mailings/{mailing.id}/delete")
    assert "Winter sale" in confirm.text
    assert "cancel it instead" in confirm.text
    assert f'action="/admin/mailings/{mailing.id}/delete"' in confirm.text
    assert (await _mailing(sessionmaker, mailing.id)).deleted_at is None

    response = await admin.post(f"/admin/mailings/{mailing.id}/delete", data=form())

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/mailings"
    deleted = await _mailing(sessionmaker, mailing.id)
    assert (deleted.deleted_at is not None, deleted.cancelled_at is not None) == (True, True)
    assert await event_types(sessionmaker) == ["mailing.created", "mailing.deleted"]
    # Gone from the pages, as from the API.
    assert (await admin.get(f"/admin/mailings/{mailing.id}")).status_code == 404
    assert (await admin.get(f"/admin/mailings/{mailing.id}/edit")).status_code == 404
    assert attribute_values((await admin.get("/admin/mailings")).text, "data-mailing") == []
    again = await admin.post(f"/admin/mailings/{mailing.id}/delete", data=form())
    assert again.status_code == 404


async def test_the_list_filters_by_status_searches_the_text_and_pages_newest_first(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    now = datetime.now(UTC)
    running = await add_mailing(
        sessionmaker, text="Running 100% sale", start_at=now - timedelta(hours=1)
    )
    ids = [running.id]
    for number in range(29):
        ids.append((await add_mailing(sessionmaker, text=f"Later {number}")).id)

    first = (await admin.get("/admin/mailings")).text
    listed = [int(value) for value in attribute_values(first, "data-mailing")]
    assert listed == sorted(ids, reverse=True)[:25]
    [next_link] = [link for link in links(first, "/admin/mailings?") if "cursor=" in link]
    second = (await admin.get(next_link)).text
    assert [int(value) for value in attribute_values(second, "data-mailing")] == sorted(
        ids, reverse=True
    )[25:]

    by_status = (await admin.get("/admin/mailings", params={"status": "running"})).text
    assert attribute_values(by_status, "data-mailing") == [str(running.id)]
    # A LIKE wildcard typed in the search is a literal character.
    searched = (await admin.get("/admin/mailings", params={"q": "100%"})).text
    assert attribute_values(searched, "data-mailing") == [str(running.id)]
    assert (
        attribute_values(
            (await admin.get("/admin/mailings", params={"q": "_"})).text, "data-mailing"
        )
        == []
    )


async def test_the_detail_page_shows_the_errors_and_pages_the_messages_by_status(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing = await add_mailing(sessionmaker)
    failed = await add_messages(
        sessionmaker, mailing.id, [MessageStatus.failed] * 3, error_class="http_5xx"
    )
    sent = await add_messages(sessionmaker, mailing.id, [MessageStatus.sent] * 60)
    detail = f"/admin/mailings/{mailing.id}"

    page = (await admin.get(detail)).text
    assert attribute_values(page, "data-error-class") == ["http_5xx"]
    assert '<tr data-error-class="http_5xx"><td>http_5xx</td><td>3</td></tr>' in page
    assert [int(value) for value in attribute_values(page, "data-message")] == (failed + sent)[:50]

    only_failed = (await admin.get(detail, params={"status": "failed"})).text
    assert [int(value) for value in attribute_values(only_failed, "data-message")] == failed
    sent_page = (await admin.get(detail, params={"status": "sent"})).text
    [next_link] = [link for link in links(sent_page, f"{detail}?") if "cursor=" in link]
    assert "status=sent" in next_link
    rest = (await admin.get(next_link)).text
    assert [int(value) for value in attribute_values(rest, "data-message")] == sent[50:]


async def test_the_audience_preview_follows_the_form_as_it_is_filled_in(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_client(sessionmaker, 1, tag="vip", timezone="Europe/Moscow")
    await add_client(sessionmaker, 2, tag="vip", timezone="Asia/Tokyo")
    await add_client(sessionmaker, 3, tag="new", timezone="Europe/Moscow")
    page = (await admin.get(NEW)).text
    # The form asks for the preview on load and, debounced, on every change.
    assert 'hx-post="/admin/mailings/preview"' in page
    assert 'hx-trigger="load, input delay:500ms, change delay:500ms"' in page
    assert 'hx-target="#audience"' in page

    # Typed so far: no text yet, which the audience does not depend on.
    response = await admin.post(
        "/admin/mailings/preview",
        data=mailing_form(
            text="",
            start_local="2030-03-01T09:00",
            end_local="2030-03-01T15:00",
            tags=["vip"],
            window_start="10:00",
            window_end="11:00",
        ),
    )

    assert response.status_code == 200
    assert attribute_values(response.text, "data-zone") == ["Europe/Moscow", "Asia/Tokyo"]
    assert '<strong data-audience="matching">2</strong>' in response.text
    assert '<strong data-audience="never">1</strong>' in response.text
    assert "2030-03-01 07:00 UTC" in response.text
    assert "2030-03-01 10:00 (+03:00)" in response.text

    unfinished = await admin.post(
        "/admin/mailings/preview",
        data=mailing_form(end_local="", window_start="10:00", window_end=""),
    )
    assert unfinished.status_code == 200  # htmx swaps 2xx answers only
    assert "End: this field is required" in unfinished.text
    assert "Send window until: must be a 24-hour time HH:MM" in unfinished.text
    # The rate does not change the audience: one not valid yet does not hide it.
    rated = await admin.post(
        "/admin/mailings/preview", data=mailing_form(tags=["vip"], max_rate="fast")
    )
    assert '<strong data-audience="matching">2</strong>' in rated.text
    assert await count(sessionmaker, Mailing) == 0
