"""Operator login for the admin UI: OpenID Connect, a signed session cookie, CSRF tokens.

- ``provider``: the authorization code flow with PKCE (S256) through authlib's
  Starlette client, configured from the issuer's discovery document.
- ``herald_api.admin_settings``: the ``HERALD_ADMIN_*`` settings (outside this package,
  which ``herald_api.settings`` must not import: see that module).
- ``rule``: who is an admin (a claim value, or a verified email domain).
- ``session``: the signed cookie on ``/admin`` only, with an expiry in its content.
- ``dependencies``: ``current_operator`` and ``verify_csrf`` for the pages.
- ``routes``: ``/admin/login``, ``/admin/callback``, ``/admin/logout``,
  ``/admin/logged-out`` and their pages.

The REST API never reads this cookie: the session exists only under ``/admin``.
authlib is imported only when the admin UI is on.
"""

import structlog
from fastapi import APIRouter, FastAPI

from herald_api.admin.auth.dependencies import (
    Operator,
    csrf_token,
    current_operator,
    verify_csrf,
)
from herald_api.admin_settings import AdminSettings

__all__ = ["Operator", "csrf_token", "current_operator", "install_admin_auth", "verify_csrf"]

log = structlog.get_logger()


def install_admin_auth(app: FastAPI, settings: AdminSettings) -> APIRouter | None:
    """Add the /admin-scoped session middleware and return the login, callback and logout
    routes; None when OIDC is not configured (the admin UI is then off).

    ``settings`` is the api's ``ApiSettings`` (an ``AdminSettings``).
    """
    if not settings.admin_oidc_issuer:
        log.info(
            "admin.disabled",
            reason="HERALD_ADMIN_OIDC_ISSUER is not set: the admin UI is off and /admin "
            "answers 404",
        )
        return None
    # Imported here: authlib is slow to import, and only an api with the admin UI needs it.
    from herald_api.admin.auth.routes import install

    return install(app, settings)
