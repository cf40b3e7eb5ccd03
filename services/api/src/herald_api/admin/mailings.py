"""Mailing pages: the list, the create and edit form with its audience preview, the
detail page, the operator controls (pause, resume, cancel) and delete. Every change goes
through ``herald_api.mailings.service``, so the controls follow the API's rules."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.admin.forms import (
    DEFAULT_TIMEZONE,
    MAILING_LABELS,
    MailingForm,
    domain_errors,
    local_input,
    merge_errors,
    time_zone_choices,
    validate,
)
from herald_api.admin.route import AdminRoute, Page, PageDep
from herald_api.admin.templating import ADMIN_PATH
from herald_api.clients import service as clients
from herald_api.deps import SessionDep
from herald_api.errors import FieldError, HeraldError, ValidationFailed
from herald_api.mailings import controls, service
from herald_api.mailings.schemas import MAX_FILTER_ITEMS, MailingCreate, MailingUpdate
from herald_api.pagination import Cursor, decode_cursor, encode_cursor
from herald_api.params import MailingId
from herald_api.stats import service as stats
from herald_api.validation import time_zone_names
from herald_common.domain import MailingStatus, MessageStatus

router = APIRouter(prefix=ADMIN_PATH, route_class=AdminRoute)

PAGE_SIZE = 25
MESSAGES_PAGE_SIZE = 50
# The audience does not depend on the text or the rate; a blank or overlong text, or a
# rate not valid yet, must not hide the preview while the operator is still writing it.
PREVIEW_TEXT = "audience preview"
Search = Annotated[str, Query(max_length=200)]


def _status(value: str, allowed: list[str]) -> str | None:
    """A status filter from a GET form, where "any" is sent as an empty value."""
    if not value:
        return None
    if value not in allowed:
        raise ValidationFailed.on("status", f"must be one of {', '.join(allowed)}")
    return value


@router.get("/mailings", name="admin_mailings")
async def list_mailings(
    page: PageDep,
    session: SessionDep,
    status: str = "",
    q: Search = "",
    cursor: Cursor = None,
) -> Response:
    chosen = _status(status, [status.value for status in MailingStatus])
    found = await service.list_page(
        session,
        after_id=decode_cursor(cursor),
        limit=PAGE_SIZE + 1,
        status=MailingStatus(chosen) if chosen else None,
        text=q.strip() or None,
        newest_first=True,
    )
    query = {"status": status, "q": q}
    next_query = None
    if len(found) > PAGE_SIZE:
        next_query = {**query, "cursor": encode_cursor(found[PAGE_SIZE - 1][0].id)}
    shown = found[:PAGE_SIZE]
    return page.render(
        "mailings/list.html",
        title="Mailings",
        section="admin_mailings",
        mailings=shown,
        offered_by_mailing={mailing.id: controls.offered(status) for mailing, status in shown},
        status=status,
        q=q,
        query=query,
        next_query=next_query,
        paged=cursor is not None,
    )


async def _form_page(
    page: Page,
    session: AsyncSession,
    form: MailingForm,
    *,
    errors: list[FieldError] | None = None,
    mailing_id: int | None = None,
    status_code: int = 200,
) -> Response:
    values = await clients.filter_values(session, MAX_FILTER_ITEMS)
    # The mailing's own values stay choosable even when no client has them any more.
    operator_codes = sorted({*values.operator_codes, *form.operator_codes})
    tags = sorted({*values.tags, *form.tags})
    return page.render(
        "mailings/form.html",
        title=f"Edit mailing #{mailing_id}" if mailing_id else "New mailing",
        section="admin_mailings",
        form=form,
        errors=form.errors(errors or []),
        mailing_id=mailing_id,
        operator_codes=operator_codes,
        tags=tags,
        time_zones=time_zone_choices(),
        status_code=status_code,
    )


async def _read_form(
    request: Request,
) -> tuple[MailingForm, MailingCreate | None, list[FieldError]]:
    """The form as typed, and the mailing it describes or what is wrong with it."""
    form = MailingForm.of_form(await request.form())
    body, errors = form.body()
    # The form describes the whole mailing, an edit too: validated as a create, so that
    # a cleared start is "required" rather than "unchanged".
    terms, schema_errors = validate(MailingCreate, body)
    errors = merge_errors(errors, schema_errors)
    return form, None if errors else terms, errors


@router.get("/mailings/new", name="admin_mailing_new")
async def new_mailing(page: PageDep, session: SessionDep) -> Response:
    # A frame to start from: the next full hour, for a day.
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    form = MailingForm(
        start_local=local_input(start, DEFAULT_TIMEZONE),
        end_local=local_input(start + timedelta(days=1), DEFAULT_TIMEZONE),
    )
    return await _form_page(page, session, form)


@router.post("/mailings/new", name="admin_mailing_create")
async def create_mailing(page: PageDep, session: SessionDep, request: Request) -> Response:
    form, terms, errors = await _read_form(request)
    if terms is None:
        return await _form_page(page, session, form, errors=errors, status_code=422)
    mailing, _ = await service.create(session, terms)
    return page.see_other("admin_mailing", mailing_id=mailing.id)


@router.post("/mailings/preview", name="admin_mailing_preview")
async def preview(page: PageDep, session: SessionDep, request: Request) -> Response:
    """The audience fragment under the form: always a 200, which htmx swaps in, with the
    reasons instead when the terms are not valid yet."""
    form = MailingForm.of_form(await request.form())
    body, errors = form.body()
    body.update(text=PREVIEW_TEXT, max_rate=None)
    errors = [error for error in errors if error.field != "max_rate"]
    terms, schema_errors = validate(MailingCreate, body)
    errors = merge_errors(errors, schema_errors)
    if errors or terms is None:
        return page.render(
            "mailings/_audience.html",
            audience=None,
            errors=form.errors(errors),
            labels=MAILING_LABELS,
        )
    return page.render("mailings/_audience.html", audience=await service.preview(session, terms))


@router.get("/mailings/{mailing_id}", name="admin_mailing")
async def mailing_detail(
    page: PageDep,
    session: SessionDep,
    mailing_id: MailingId,
    status: str = "",
    cursor: Cursor = None,
) -> Response:
    mailing, mailing_status = await service.get(session, mailing_id)
    chosen = _status(status, [status.value for status in MessageStatus])
    messages = await service.messages_page(
        session,
        mailing_id,
        after_id=decode_cursor(cursor),
        limit=MESSAGES_PAGE_SIZE + 1,
        status=MessageStatus(chosen) if chosen else None,
    )
    next_query = None
    if len(messages) > MESSAGES_PAGE_SIZE:
        last = messages[MESSAGES_PAGE_SIZE - 1]
        next_query = {"status": status, "cursor": encode_cursor(last.id)}
    return page.render(
        "mailings/detail.html",
        title=f"Mailing #{mailing.id}",
        section="admin_mailings",
        mailing=mailing,
        mailing_status=mailing_status,
        offered=controls.offered(mailing_status),
        stats=await stats.of_mailing(session, mailing_id),
        progress=await stats.progress(session, mailing_id),
        messages=messages[:MESSAGES_PAGE_SIZE],
        message_status=status,
        next_query=next_query,
        paged=cursor is not None,
    )


@router.get("/mailings/{mailing_id}/edit", name="admin_mailing_edit")
async def edit_mailing(
    page: PageDep, session: SessionDep, mailing_id: MailingId, tz: str = "UTC"
) -> Response:
    mailing, _ = await service.get(session, mailing_id)
    timezone = tz if tz in time_zone_names() else "UTC"
    form = MailingForm.of_mailing(mailing, timezone)
    return await _form_page(page, session, form, mailing_id=mailing_id)


@router.post("/mailings/{mailing_id}/edit", name="admin_mailing_update")
async def update_mailing(
    page: PageDep, session: SessionDep, request: Request, mailing_id: MailingId
) -> Response:
    form, terms, errors = await _read_form(request)
    if terms is not None:
        # Every field is sent: a filter or window left empty is removed.
        changes = MailingUpdate.model_validate(terms.model_dump())
        try:
            # A savepoint: a refused change leaves the request's transaction usable.
            async with session.begin_nested():
                await service.update(session, mailing_id, changes)
        except HeraldError as error:
            if error.status_code == 404:
                raise
            errors = domain_errors(error)
    if errors:
        return await _form_page(
            page, session, form, errors=errors, mailing_id=mailing_id, status_code=422
        )
    return page.see_other("admin_mailing", mailing_id=mailing_id)


def _name_the_operator(page: Page) -> None:
    """A control's event line names who used it, as the REST API's names the API key."""
    structlog.contextvars.bind_contextvars(
        operator=page.operator.name, subject=page.operator.subject
    )


@router.post("/mailings/{mailing_id}/pause", name="admin_mailing_pause")
async def pause_mailing(page: PageDep, session: SessionDep, mailing_id: MailingId) -> Response:
    _name_the_operator(page)
    await service.pause(session, mailing_id)
    return page.see_other("admin_mailing", mailing_id=mailing_id)


@router.post("/mailings/{mailing_id}/resume", name="admin_mailing_resume")
async def resume_mailing(page: PageDep, session: SessionDep, mailing_id: MailingId) -> Response:
    _name_the_operator(page)
    await service.resume(session, mailing_id)
    return page.see_other("admin_mailing", mailing_id=mailing_id)


@router.get("/mailings/{mailing_id}/cancel", name="admin_mailing_cancel_confirm")
async def confirm_cancel(page: PageDep, session: SessionDep, mailing_id: MailingId) -> Response:
    mailing, _ = await service.get(session, mailing_id)
    return page.render(
        "confirm.html",
        title=f"Cancel mailing #{mailing_id}",
        section="admin_mailings",
        question=f"Cancel mailing #{mailing_id}?",
        subject=mailing.text,
        consequence=(
            "Nothing more is sent, for good: its unsent messages end cancelled and it can"
            " no longer be resumed or edited. The mailing stays readable, with its"
            " statistics."
        ),
        action=page.url("admin_mailing_cancel", mailing_id=mailing_id),
        button="Cancel mailing",
        cancel=page.url("admin_mailing", mailing_id=mailing_id),
        cancel_label="Keep it",
    )


@router.post("/mailings/{mailing_id}/cancel", name="admin_mailing_cancel")
async def cancel_mailing(page: PageDep, session: SessionDep, mailing_id: MailingId) -> Response:
    _name_the_operator(page)
    await service.cancel(session, mailing_id)
    return page.see_other("admin_mailing", mailing_id=mailing_id)


@router.get("/mailings/{mailing_id}/delete", name="admin_mailing_delete_confirm")
async def confirm_delete(page: PageDep, session: SessionDep, mailing_id: MailingId) -> Response:
    mailing, _ = await service.get(session, mailing_id)
    return page.render(
        "confirm.html",
        title=f"Delete mailing #{mailing_id}",
        section="admin_mailings",
        question=f"Delete mailing #{mailing_id}?",
        subject=mailing.text,
        consequence=(
            "Nothing more is sent: its unsent messages end cancelled, and the mailing is"
            " gone from the lists, its pages and the API. Its messages still count in the"
            " dashboard's totals. To stop it and keep it readable, cancel it instead."
        ),
        action=page.url("admin_mailing_delete", mailing_id=mailing_id),
        button="Delete mailing",
        cancel=page.url("admin_mailing", mailing_id=mailing_id),
    )


@router.post("/mailings/{mailing_id}/delete", name="admin_mailing_delete")
async def delete_mailing(page: PageDep, session: SessionDep, mailing_id: MailingId) -> Response:
    _name_the_operator(page)
    await service.delete(session, mailing_id)
    return page.see_other("admin_mailings")
