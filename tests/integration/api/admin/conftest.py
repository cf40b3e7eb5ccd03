"""The admin pages under test: the real app, with the login replaced in one place.

``pages_app`` mounts the admin UI as if OIDC were configured, but with no login routes,
and overrides the login's three dependencies (``current_operator``, ``csrf_token``,
``verify_csrf``) so that these tests depend only on their contract: the pages get an
operator and a token, and an unsafe request passes only when it carries that token in
the ``X-CSRF-Token`` header or the ``csrf_token`` form field. The login itself is
tested in ``test_login.py`` against a real provider.
"""

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Request
from sqlalchemy.ext.asyncio import AsyncEngine

import herald_api.admin
from herald_api.admin.auth import Operator, csrf_token, current_operator, verify_csrf
from herald_api.app import create_app
from herald_api.settings import ApiSettings
from herald_common.settings import HeraldSettings
from tests.integration.api.conftest import BASE_URL, api_settings

OPERATOR = Operator(subject="operator-1", name="Olga Operator", email="olga@herald.test")
CSRF_TOKEN = "test-csrf-token"


async def token_required(request: Request) -> None:
    """The CSRF contract, as the login implements it: the session's token in the header or
    the form field of every unsafe request, else 403."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    supplied = request.headers.get("X-CSRF-Token")
    if supplied is None:
        field = (await request.form()).get("csrf_token")
        supplied = field if isinstance(field, str) else None
    if supplied != CSRF_TOKEN:
        raise HTTPException(403, "CSRF token missing or wrong")


def logged_in(app: FastAPI) -> None:
    """The dependency overrides of a logged-in operator; the only place tests set them."""
    app.dependency_overrides[current_operator] = lambda: OPERATOR
    app.dependency_overrides[csrf_token] = lambda: CSRF_TOKEN
    app.dependency_overrides[verify_csrf] = token_required


def _no_login(_app: FastAPI, _settings: ApiSettings) -> APIRouter:
    return APIRouter()


@pytest.fixture(scope="module")
async def pages_app(settings: HeraldSettings) -> AsyncIterator[FastAPI]:
    with pytest.MonkeyPatch.context() as patch:
        # As if OIDC were configured: mount_admin gets a (here empty) login router.
        patch.setattr(herald_api.admin, "install_admin_auth", _no_login)
        application = create_app(api_settings(settings))
    logged_in(application)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def admin(pages_app: FastAPI, clean_db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """A logged-in operator's browser on a clean database (no redirects followed)."""
    transport = httpx.ASGITransport(app=pages_app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def override(
    pages_app: FastAPI,
) -> Iterator[Callable[[Callable[..., Any], Callable[..., Any]], None]]:
    """Replace one of the login's dependencies for a test; restored afterwards."""
    saved = dict(pages_app.dependency_overrides)

    def replace(dependency: Callable[..., Any], replacement: Callable[..., Any]) -> None:
        pages_app.dependency_overrides[dependency] = replacement

    yield replace
    pages_app.dependency_overrides.clear()
    pages_app.dependency_overrides.update(saved)


def form(**fields: Any) -> dict[str, Any]:
    """A form body as a browser sends one from a page: with the page's CSRF token."""
    return {"csrf_token": CSRF_TOKEN, **fields}
