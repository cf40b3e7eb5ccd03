"""/api/v1/mailings: mailings and the messages each one produced."""

from typing import Annotated

import structlog
from fastapi import APIRouter, Query, Response, status

from herald_api.auth.route import AuthenticatedRoute
from herald_api.auth.service import Caller
from herald_api.deps import CallerDep, SessionDep
from herald_api.errors import ErrorResponse, error_responses
from herald_api.idempotency.dependencies import (
    IdempotencyDep,
    idempotent_responses,
    replay_header_doc,
)
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
    responses={201: {"headers": replay_header_doc()}, **idempotent_responses(401, 413, 422)},
)
async def create_mailing(
    session: SessionDep, new: MailingCreate, idempotency: IdempotencyDep
) -> MailingRead:
    return await idempotency.remember(MailingRead.of(*await service.create(session, new)))


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
    description=(
        "One mailing by id, cancelled ones included. A deleted mailing is a 404, here and"
        " everywhere else."
    ),
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
    response_description="Deleted; no body.",
    description=(
        "Deletes the mailing, in any status: nothing more is sent, its unsent messages end"
        " cancelled, and from now on it is a 404 everywhere (GET, the list, PATCH, the"
        " controls, its messages and statistics), a second DELETE included. Its messages"
        " still count in the totals of `GET /stats`: the ledger is history. To stop a"
        " mailing and keep it readable, cancel it instead. Emits `mailing.deleted`."
    ),
    responses=error_responses(401, 404, 422),
)
async def delete_mailing(session: SessionDep, caller: CallerDep, mailing_id: MailingId) -> Response:
    _name_the_caller(caller)
    await service.delete(session, mailing_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _name_the_caller(caller: Caller) -> None:
    """Operator controls are logged with who used them: the event line (``mailing.paused``
    and the others) then names the API key, as the access line does."""
    structlog.contextvars.bind_contextvars(api_key_name=caller.name)


# No body is read; one over the size limit is still a 413, as on every path.
_CONTROL_ERRORS = {
    **error_responses(401, 404, 413, 422),
    409: {
        "model": ErrorResponse,
        "description": "A wrong transition for the mailing's status; the message says why.",
    },
}


@router.post(
    "/{mailing_id}/pause",
    summary="Pause a mailing",
    response_description="The mailing, paused.",
    description=(
        "Stops sending until a resume: no request for the mailing starts more than 1 s"
        " after this answer. Unsent messages keep their rows, state and attempts; nothing"
        " is expired by the pause (the end still expires what is unsent when it passes)."
        " A scheduled mailing can be paused too: it then does not start at start_at."
        " Pausing a paused mailing changes nothing and answers the same. A finished or"
        " cancelled mailing cannot be paused (409). Emits `mailing.paused`."
    ),
    responses=_CONTROL_ERRORS,
)
async def pause_mailing(
    session: SessionDep, caller: CallerDep, mailing_id: MailingId
) -> MailingRead:
    _name_the_caller(caller)
    return MailingRead.of(*await service.pause(session, mailing_id))


@router.post(
    "/{mailing_id}/resume",
    summary="Resume a paused mailing",
    response_description="The mailing, running again (or scheduled, if it has not started).",
    description=(
        "Sending continues where it stopped, under the mailing's current frame and each"
        " client's window: the due time of every waiting message is computed afresh, and"
        " a message whose window no longer opens before the end expires. Only a paused"
        " mailing can be resumed: a running or scheduled one is not paused, and a finished"
        " or cancelled one has nothing left to send (409). Emits `mailing.resumed`."
    ),
    responses=_CONTROL_ERRORS,
)
async def resume_mailing(
    session: SessionDep, caller: CallerDep, mailing_id: MailingId
) -> MailingRead:
    _name_the_caller(caller)
    return MailingRead.of(*await service.resume(session, mailing_id))


@router.post(
    "/{mailing_id}/cancel",
    summary="Cancel a mailing",
    response_description="The mailing, cancelled.",
    description=(
        "Stops the mailing for good: nothing more is sent and every unsent message ends"
        " `cancelled`. The mailing stays readable, with its messages and statistics, and"
        " can no longer change (PATCH and the other controls answer 409). Cancelling a"
        " cancelled mailing changes nothing and answers the same; a finished one has"
        " nothing left to cancel (409). Emits `mailing.cancelled`."
    ),
    responses=_CONTROL_ERRORS,
)
async def cancel_mailing(
    session: SessionDep, caller: CallerDep, mailing_id: MailingId
) -> MailingRead:
    _name_the_caller(caller)
    return MailingRead.of(*await service.cancel(session, mailing_id))


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
