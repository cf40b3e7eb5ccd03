"""/api/v1/clients: the client directory and its bulk import."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from herald_api.auth.route import AuthenticatedRoute
from herald_api.clients import csv_header, service
from herald_api.clients.importer import (
    CHUNK_ROWS,
    MAX_ERRORS,
    MAX_LINE_BYTES,
    ImportFormat,
    import_clients,
)
from herald_api.clients.schemas import (
    ClientCreate,
    ClientPage,
    ClientRead,
    ClientUpdate,
    ImportResult,
)
from herald_api.deps import SessionDep, StateDep
from herald_api.errors import UnsupportedMediaType, error_responses
from herald_api.idempotency.dependencies import (
    IdempotencyDep,
    ImportIdempotencyDep,
    idempotent_responses,
    replay_header_doc,
)
from herald_api.pagination import Cursor, Limit, decode_cursor, next_cursor
from herald_api.params import API_PREFIX, ClientId, example
from herald_api.validation import OperatorCode, Tag

router = APIRouter(prefix=f"{API_PREFIX}/clients", tags=["clients"], route_class=AuthenticatedRoute)

TagFilter = Annotated[
    Tag | None,
    Query(
        description="Only clients with exactly this tag.",
        examples=["vip"],
        openapi_examples=example("vip"),
    ),
]
OperatorCodeFilter = Annotated[
    OperatorCode | None,
    Query(
        description="Only clients with this operator code.",
        examples=["999"],
        openapi_examples=example("999"),
    ),
]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a client",
    response_description="The new client.",
    description="Adds a client to the directory. The phone must be unique (409 otherwise).",
    responses={201: {"headers": replay_header_doc()}, **idempotent_responses(401, 409, 413, 422)},
)
async def create_client(
    session: SessionDep, new: ClientCreate, idempotency: IdempotencyDep
) -> ClientRead:
    return await idempotency.remember(ClientRead.model_validate(await service.create(session, new)))


@router.get(
    "",
    summary="List clients",
    response_description="A page of clients.",
    description="Clients in ascending id order, a page at a time, optionally filtered.",
    responses=error_responses(401, 422),
)
async def list_clients(
    session: SessionDep,
    tag: TagFilter = None,
    operator_code: OperatorCodeFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ClientPage:
    clients = await service.list_page(
        session,
        after_id=decode_cursor(cursor),
        limit=limit + 1,
        tag=tag,
        operator_code=operator_code,
    )
    return ClientPage(
        items=[ClientRead.model_validate(client) for client in clients[:limit]],
        next_cursor=next_cursor([client.id for client in clients], limit),
    )


_IMPORT_DESCRIPTION = f"""
Imports many clients from the request body, streamed: memory does not grow with the file.

* `text/csv`: a header row naming `phone` and `timezone`, optionally `operator_code` and
  `tag`, each once, in any order and letter case (a name may be quoted or padded with
  spaces); then one client per line (`\\n` or `\\r\\n` line ends). Empty optional
  fields take their defaults. A quoted field holding a line break is **not supported**:
  every line is one record. A body without such a header is a 422; the body schema's
  pattern says exactly which headers are accepted.
* `application/x-ndjson`: one JSON object per line, with the fields of `POST /clients`.
  Any body is accepted: a line that is not such an object is reported in `errors`.

Every line is validated with the rules of `POST /clients`; blank lines are skipped.
Valid lines are written in chunks of {CHUNK_ROWS}, each committed on its own, so a
failure part-way (e.g. the size limit hit while streaming) keeps the chunks already
committed. With `upsert=false` a phone that already exists, or repeats an earlier line,
is counted in `duplicates` and listed in `errors`; with `upsert=true` an existing client
is overwritten and, within a chunk, the later of two lines with the same phone wins.
`errors` lists at most {MAX_ERRORS} problems, ordered by line.
"""


@router.post(
    "/import",
    summary="Import clients in bulk (CSV or NDJSON)",
    response_description="What the import did, with the rejected lines.",
    description=_IMPORT_DESCRIPTION,
    responses={200: {"headers": replay_header_doc()}, **idempotent_responses(401, 413, 415, 422)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The clients, one per line.",
            "content": {
                ImportFormat.csv.value: {
                    "schema": {
                        "type": "string",
                        "pattern": csv_header.body_pattern(MAX_LINE_BYTES),
                    },
                    "example": "phone,timezone,tag\n79991234567,Europe/Moscow,vip\n",
                },
                ImportFormat.ndjson.value: {
                    # Every body is accepted (the answer reports each line that is not a
                    # client), so the schema constrains nothing.
                    "schema": {"description": "One JSON object per line."},
                    "example": '{"phone": "79991234567", "timezone": "Europe/Moscow"}\n',
                },
            },
        }
    },
)
async def import_clients_endpoint(
    request: Request,
    state: StateDep,
    idempotency: ImportIdempotencyDep,
    upsert: Annotated[
        bool,
        Query(
            description="Overwrite clients whose phone already exists instead of skipping them.",
            examples=[False],
            openapi_examples=example(False),
        ),
    ] = False,
) -> ImportResult:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        import_format = ImportFormat(media_type)
    except ValueError:
        raise UnsupportedMediaType(
            f"send the clients as {ImportFormat.csv.value} or {ImportFormat.ndjson.value}"
        ) from None
    body = idempotency.fingerprinted(request.stream())
    await idempotency.replay_if_done(body)
    return await import_clients(
        body,
        import_format=import_format,
        upsert=upsert,
        sessionmaker=state.sessionmaker,
        on_commit=state.relay.wake,
        on_finish=idempotency.remember,
    )


@router.get(
    "/{client_id}",
    summary="Get a client",
    response_description="The client.",
    description="One client by id.",
    responses=error_responses(401, 404, 422),
)
async def get_client(session: SessionDep, client_id: ClientId) -> ClientRead:
    return ClientRead.model_validate(await service.get(session, client_id))


@router.patch(
    "/{client_id}",
    summary="Update a client",
    response_description="The client as changed.",
    description=(
        "Changes only the fields sent. A phone taken by another client is a 409."
        " Emits `client.updated`."
    ),
    responses=error_responses(401, 404, 409, 413, 422),
)
async def update_client(
    session: SessionDep, client_id: ClientId, changes: ClientUpdate
) -> ClientRead:
    return ClientRead.model_validate(await service.update(session, client_id, changes))


@router.delete(
    "/{client_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a client",
    response_description="Deleted; no body.",
    description=(
        "Deletes the client for good; its unsent messages are cancelled by the scheduler,"
        " and the ledger keeps a copy of its phone for statistics. Emits `client.deleted`."
    ),
    responses=error_responses(401, 404, 422),
)
async def delete_client(session: SessionDep, client_id: ClientId) -> Response:
    await service.delete(session, client_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
