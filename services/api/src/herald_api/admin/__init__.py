"""The admin UI at /admin: server-rendered pages (Jinja2, htmx, Chart.js, Pico CSS) for
operators, behind the OpenID Connect login of ``herald_api.admin.auth``.

The pages call the same services as the REST API, so a change made here writes the
same rows and outbox events, and is validated by the same schemas. Without a configured
identity provider nothing is mounted: /admin and everything under it is a 404.
"""

from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from herald_api.admin import api_keys, clients, dashboard, mailings
from herald_api.admin.auth import current_operator, install_admin_auth
from herald_api.admin.clients import IMPORT_PATH
from herald_api.admin.templating import STATIC_DIR, STATIC_PATH
from herald_api.middleware import bind_path_ids
from herald_api.settings import ApiSettings

__all__ = ["IMPORT_PATH", "mount_admin", "pages_router"]


def pages_router() -> APIRouter:
    """Every page and fragment, each behind the operator's login."""
    router = APIRouter(
        dependencies=[Depends(current_operator), Depends(bind_path_ids)],
        include_in_schema=False,
    )
    for pages in (dashboard, mailings, clients, api_keys):
        router.include_router(pages.router)
    return router


def mount_admin(app: FastAPI, settings: ApiSettings) -> bool:
    """The login, the pages and their static files, when OIDC is configured; whether it was.

    ``install_admin_auth`` logs why the UI is off when it is, so nothing is logged here.
    """
    login = install_admin_auth(app, settings)
    if login is None:
        return False
    # The files need no login: they are the vendored libraries and the UI's own script
    # and stylesheet, nothing about the data.
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="admin_static")
    app.include_router(login, include_in_schema=False)
    app.include_router(pages_router())
    return True
