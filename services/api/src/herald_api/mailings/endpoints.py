"""/api/v1/mailings: mailings and the messages each one produced."""

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from herald_api.auth.route import AuthenticatedRoute
from herald_api.deps import SessionDep
from herald_api.errors import error_responses
from herald_api.mailings import service
from herald_api.mailings.schemas import (
    AudiencePreview,
    MailingCreate,
    MailingPage,
    MailingRead,
    MailingUpdate,
    MessagePage,
    MessageRead,
)
from herald_api.pagination import Cursor, Limit, decode_cursor, next_cursor
from herald_api.params import API_PREFIX, MailingId, example
from herald_common.domain import MailingStatus, MessageStatus

router = APIRouter(
    prefix=f"{API_PREFIX}/mailings", tags=["mailings"], route_class=AuthenticatedRoute
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a mailing",
    response_description="The new mailing.",
    description=(
        "Creates a mailing; the scheduler sends its text to every matching client inside"
        " the frame and each client's local send window. Emits `mailing.created`."
    ),
    responses=error_responses(401, 413, 422),
)
async def create_mailing(session: SessionDep, new: MailingCreate) -> MailingRead:
    return MailingRead.of(*await service.create(session, new))


# Before the /{mailing_id} routes, so that "preview" is never read as an id.
@router.post(
    "/preview",
    summary="Preview a mailing's audience",
    response_description="Who the mailing would reach, by time zone, and when.",
    description=(
        "Takes the body of `POST /mailings` and creates nothing. Counts the clients the"
        " filter matches now and, per time zone, the first instant their message would be"
        " due: the first instant inside the frame (from now on, once it has started) whose"
        " local time is inside the send window, as the scheduler computes it. Clients in a"
        " zone where the window does not open inside the frame are counted in `never`."
    ),
    responses=error_responses(401, 413, 422),
)
async def preview_mailing(session: SessionDep, terms: MailingCreate) -> AudiencePreview:
    return await service.preview(session, terms)


@router.get(
    "",
    summary="List mailings",
    response_description="A page of mailings.",
    description="Mailings in ascending id order, a page at a time, optionally by status.",
    responses=error_responses(401, 422),
)
async def list_mailings(
    session: SessionDep,
    status: Annotated[
        MailingStatus | None,
        Query(
            description="Only mailings currently in this status.",
            examples=["running"],
            openapi_examples=example("running"),
        ),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> MailingPage:
    found = await service.list_page(
        session, after_id=decode_cursor(cursor), limit=limit + 1, status=status
    )
    return MailingPage(
        items=[MailingRead.of(mailing, state) for mailing, state in found[:limit]],
        next_cursor=next_cursor([mailing.id for mailing, _ in found], limit),
    )


@router.get(
    "/{mailing_id}",
    summary="Get a mailing",
    response_description="The mailing.",
    description="One mailing by id, including deleted (cancelled) ones.",
    responses=error_responses(401, 404, 422),
)
async def get_mailing(session: SessionDep, mailing_id: MailingId) -> MailingRead:
    return MailingRead.of(*await service.get(session, mailing_id))


@router.patch(
    "/{mailing_id}",
    summary="Update a mailing",
    response_description="The mailing as changed.",
    description=(
        "Changes only the fields sent; the merged mailing must still be valid"
        " (start_at before end_at). The scheduler reconciles the unsent messages."
        " A deleted mailing cannot change (409). Emits `mailing.updated`."
    ),
    responses=error_responses(401, 404, 409, 413, 422),
)
async def update_mailing(
    session: SessionDep, mailing_id: MailingId, changes: MailingUpdate
) -> MailingRead:
    return MailingRead.of(*await service.update(session, mailing_id, changes))


@router.delete(
    "/{mailing_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a mailing",
    response_description="Cancelled (or already was); no body.",
    description=(
        "Cancels the mailing: nothing more is sent and its unsent messages end cancelled."
        " It stays readable with status `cancelled`. Deleting it again is a no-op."
        " Emits `mailing.deleted`."
    ),
    responses=error_responses(401, 404, 422),
)
async def delete_mailing(session: SessionDep, mailing_id: MailingId) -> Response:
    await service.delete(session, mailing_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{mailing_id}/messages",
    summary="List a mailing's messages",
    response_description="A page of the mailing's messages.",
    description="The mailing's ledger rows in ascending id order, optionally by status.",
    responses=error_responses(401, 404, 422),
)
async def list_messages(
    session: SessionDep,
    mailing_id: MailingId,
    status: Annotated[
        MessageStatus | None,
        Query(
            description="Only messages in this status.",
            examples=["failed"],
            openapi_examples=example("failed"),
        ),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> MessagePage:
    messages = await service.messages_page(
        session, mailing_id, after_id=decode_cursor(cursor), limit=limit + 1, status=status
    )
    return MessagePage(
        items=[MessageRead.of(message) for message in messages[:limit]],
        next_cursor=next_cursor([message.id for message in messages], limit),
    )
