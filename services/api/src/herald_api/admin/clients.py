"""Client pages: search, create, edit, delete, and the CSV/NDJSON import upload. Changes
go through ``herald_api.clients.service`` and the same importer as the REST import."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from herald_api.admin.forms import ClientForm, domain_errors, time_zone_choices, validate
from herald_api.admin.route import AdminRoute, Page, PageDep
from herald_api.admin.templating import ADMIN_PATH
from herald_api.clients import service
from herald_api.clients.importer import MAX_ERRORS, ImportFormat, import_clients
from herald_api.clients.schemas import ClientCreate, ClientUpdate, ImportResult
from herald_api.deps import SessionDep, StateDep
from herald_api.errors import FieldError, HeraldError
from herald_api.pagination import Cursor, decode_cursor, encode_cursor
from herald_api.params import ClientId

router = APIRouter(prefix=ADMIN_PATH, route_class=AdminRoute)

IMPORT_PATH = f"{ADMIN_PATH}/clients/import"
PAGE_SIZE = 50
UPLOAD_CHUNK_BYTES = 64 * 1024
FORMATS_BY_SUFFIX = {
    ".csv": ImportFormat.csv,
    ".ndjson": ImportFormat.ndjson,
    ".jsonl": ImportFormat.ndjson,
}
Short = Annotated[str, Query(max_length=64)]


@router.get("/clients", name="admin_clients")
async def list_clients(
    page: PageDep,
    session: SessionDep,
    phone: Short = "",
    tag: Short = "",
    operator_code: Short = "",
    cursor: Cursor = None,
) -> Response:
    """Clients by id; the phone matches by prefix, the tag and the code exactly."""
    found = await service.list_page(
        session,
        after_id=decode_cursor(cursor),
        limit=PAGE_SIZE + 1,
        tag=tag or None,
        operator_code=operator_code.strip() or None,
        phone_prefix=phone.strip() or None,
    )
    query = {"phone": phone, "tag": tag, "operator_code": operator_code}
    next_query = None
    if len(found) > PAGE_SIZE:
        next_query = {**query, "cursor": encode_cursor(found[PAGE_SIZE - 1].id)}
    return page.render(
        "clients/list.html",
        title="Clients",
        section="admin_clients",
        clients=found[:PAGE_SIZE],
        query=query,
        next_query=next_query,
        paged=cursor is not None,
    )


def _form_page(
    page: Page,
    form: ClientForm,
    *,
    errors: list[FieldError] | None = None,
    client_id: int | None = None,
    status_code: int = 200,
) -> Response:
    return page.render(
        "clients/form.html",
        title=f"Edit client #{client_id}" if client_id else "New client",
        section="admin_clients",
        form=form,
        errors=form.errors(errors or []),
        client_id=client_id,
        time_zones=time_zone_choices(),
        status_code=status_code,
    )


@router.get("/clients/new", name="admin_client_new")
async def new_client(page: PageDep) -> Response:
    return _form_page(page, ClientForm())


@router.post("/clients/new", name="admin_client_create")
async def create_client(page: PageDep, session: SessionDep, request: Request) -> Response:
    form = ClientForm.of_form(await request.form())
    new, errors = validate(ClientCreate, form.body())
    if new is not None:
        try:
            # A savepoint: a duplicate phone leaves the request's transaction usable.
            async with session.begin_nested():
                client = await service.create(session, new)
        except HeraldError as error:
            errors = domain_errors(error)
        else:
            return page.see_other("admin_clients", query={"phone": client.phone})
    return _form_page(page, form, errors=errors, status_code=422)


async def _upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(UPLOAD_CHUNK_BYTES):
        yield chunk


def _import_page(
    page: Page,
    *,
    result: ImportResult | None = None,
    error: str | None = None,
    file_name: str | None = None,
    status_code: int = 200,
) -> Response:
    return page.render(
        "clients/import.html",
        title="Import clients",
        section="admin_clients",
        result=result,
        error=error,
        file_name=file_name,
        max_errors=MAX_ERRORS,
        status_code=status_code,
    )


@router.get("/clients/import", name="admin_client_import_form")
async def import_form(page: PageDep) -> Response:
    return _import_page(page)


@router.post(IMPORT_PATH.removeprefix(ADMIN_PATH), name="admin_client_import")
async def import_upload(page: PageDep, state: StateDep, request: Request) -> Response:
    """The uploaded file through the REST import's own importer: streamed from the
    spooled upload, committed chunk by chunk, each chunk's events woken out at once."""
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return _import_page(page, error="choose a file to upload", status_code=422)
    chosen = form.get("format")
    name = upload.filename
    if chosen in (ImportFormat.csv.value, ImportFormat.ndjson.value):
        import_format = ImportFormat(str(chosen))
    else:
        suffix = name[name.rfind(".") :].lower() if "." in name else ""
        found = FORMATS_BY_SUFFIX.get(suffix)
        if found is None:
            return _import_page(
                page,
                error=f"cannot tell the format of {name}: name it .csv or .ndjson, or choose one",
                file_name=name,
                status_code=422,
            )
        import_format = found
    try:
        result = await import_clients(
            _upload_chunks(upload),
            import_format=import_format,
            upsert=form.get("upsert") == "on",
            sessionmaker=state.sessionmaker,
            on_commit=state.relay.wake,
        )
    except HeraldError as error:
        return _import_page(page, error=error.message, file_name=name, status_code=422)
    return _import_page(page, result=result, file_name=name)


async def _client_form(session: AsyncSession, client_id: int) -> ClientForm:
    return ClientForm.of_client(await service.get(session, client_id))


@router.get("/clients/{client_id}/edit", name="admin_client_edit")
async def edit_client(page: PageDep, session: SessionDep, client_id: ClientId) -> Response:
    return _form_page(page, await _client_form(session, client_id), client_id=client_id)


@router.post("/clients/{client_id}/edit", name="admin_client_update")
async def update_client(
    page: PageDep, session: SessionDep, request: Request, client_id: ClientId
) -> Response:
    form = ClientForm.of_form(await request.form())
    changes, errors = validate(ClientUpdate, form.body())
    if changes is not None:
        try:
            async with session.begin_nested():
                client = await service.update(session, client_id, changes)
        except HeraldError as error:
            if error.status_code == 404:
                raise
            errors = domain_errors(error)
        else:
            return page.see_other("admin_clients", query={"phone": client.phone})
    return _form_page(page, form, errors=errors, client_id=client_id, status_code=422)


@router.get("/clients/{client_id}/delete", name="admin_client_delete_confirm")
async def confirm_delete(page: PageDep, session: SessionDep, client_id: ClientId) -> Response:
    client = await service.get(session, client_id)
    return page.render(
        "confirm.html",
        title=f"Delete client #{client_id}",
        section="admin_clients",
        question=f"Delete client #{client_id}?",
        subject=f"{client.phone} · {client.operator_code} · {client.tag or 'no tag'}"
        f" · {client.timezone}",
        consequence=(
            "The client is removed for good and its unsent messages are cancelled; the"
            " ledger keeps the messages already sent, for statistics."
        ),
        action=page.url("admin_client_delete", client_id=client_id),
        button="Delete client",
        cancel=page.url("admin_clients"),
    )


@router.post("/clients/{client_id}/delete", name="admin_client_delete")
async def delete_client(page: PageDep, session: SessionDep, client_id: ClientId) -> Response:
    await service.delete(session, client_id)
    return page.see_other("admin_clients")
