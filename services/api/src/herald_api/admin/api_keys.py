"""API key pages: the list, creation (the key is shown on that one answer and nowhere
else: only its hash is stored), and revocation, through ``herald_api.auth.service``."""

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.admin.forms import FieldErrors, domain_errors, field_errors
from herald_api.admin.route import AdminRoute, Page, PageDep
from herald_api.admin.templating import ADMIN_PATH
from herald_api.auth import service
from herald_api.deps import SessionDep
from herald_api.errors import HeraldError, NotFound
from herald_api.params import BIGINT_MAX

router = APIRouter(prefix=ADMIN_PATH, route_class=AdminRoute)

KeyId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]


async def _list_page(
    page: Page,
    session: AsyncSession,
    *,
    name: str = "",
    errors: FieldErrors | None = None,
    created: tuple[int, str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return page.render(
        "api_keys/list.html",
        title="API keys",
        section="admin_api_keys",
        keys=await service.list_keys(session),
        name=name,
        errors=errors or {},
        created=created,
        name_max_length=service.NAME_MAX_LENGTH,
        status_code=status_code,
    )


@router.get("/api-keys", name="admin_api_keys")
async def list_keys(page: PageDep, session: SessionDep) -> Response:
    return await _list_page(page, session)


@router.post("/api-keys", name="admin_api_key_create")
async def create_key(page: PageDep, session: SessionDep, request: Request) -> Response:
    typed = (await request.form()).get("name")
    name = typed if isinstance(typed, str) else ""
    try:
        row, key = await service.create(session, service.key_name(name))
    except HeraldError as error:
        errors = field_errors(domain_errors(error), {"name": "name"})
        return await _list_page(page, session, name=name, errors=errors, status_code=422)
    # Answered, not redirected to: the key exists only in this response.
    return await _list_page(page, session, created=(row.id, row.name, key), status_code=201)


@router.get("/api-keys/{key_id}/revoke", name="admin_api_key_revoke_confirm")
async def confirm_revoke(page: PageDep, session: SessionDep, key_id: KeyId) -> Response:
    found = await service.get(session, key_id)
    if found is None:
        raise NotFound(f"no API key with id {key_id}")
    return page.render(
        "confirm.html",
        title=f"Revoke API key #{key_id}",
        section="admin_api_keys",
        question=f"Revoke API key #{key_id}?",
        subject=f"{found.name} (hk_{found.prefix}_…)",
        consequence="Requests with this key are refused from now on. This cannot be undone.",
        action=page.url("admin_api_key_revoke", key_id=key_id),
        button="Revoke key",
        cancel=page.url("admin_api_keys"),
    )


@router.post("/api-keys/{key_id}/revoke", name="admin_api_key_revoke")
async def revoke_key(page: PageDep, session: SessionDep, key_id: KeyId) -> Response:
    if await service.revoke(session, key_id) is None:
        raise NotFound(f"no API key with id {key_id}")
    return page.see_other("admin_api_keys")
