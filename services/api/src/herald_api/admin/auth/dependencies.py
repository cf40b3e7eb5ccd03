"""What admin pages depend on: the logged-in operator and the CSRF check.

Both read the session ``AdminSessionMiddleware`` put on the request; without one (a
path outside ``/admin``, or the admin UI off) there is no operator. Refusals are
exceptions that ``install_admin_auth`` registers handlers for: ``LoginRequired``
becomes a 303 to the login (or, for htmx, an ``HX-Redirect``), ``CsrfRejected`` a 403.
"""

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request

from herald_api.admin.auth.session import ADMIN_PATH, EXPIRES_KEY, is_admin_path, route_path

OPERATOR_KEY = "operator"
CSRF_KEY = "csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class Operator:
    """The logged-in admin, as the session remembers them (no tokens)."""

    subject: str
    name: str
    email: str | None


class LoginRequired(Exception):
    """No valid session: the operator must log in, then come back to ``next_path``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRejected(Exception):
    """An unsafe request without the session's CSRF token."""


def session_of(request: Request) -> dict[str, Any]:
    """The request's admin session; empty where the middleware does not run."""
    session: dict[str, Any] = request.scope.get("session", {})
    return session


def operator_in(session: dict[str, Any]) -> Operator | None:
    """The operator of a session that is logged in and not expired, else None."""
    stored = session.get(OPERATOR_KEY)
    expires = session.get(EXPIRES_KEY)
    # The codec already dropped expired cookies; this also covers a session whose
    # expiry passed during the request, or one that lost its expiry somehow.
    if not isinstance(stored, dict) or not isinstance(expires, int | float):
        return None
    if expires <= time.time() or not isinstance(session.get(CSRF_KEY), str):
        return None
    subject, name, email = stored.get("sub"), stored.get("name"), stored.get("email")
    if not isinstance(subject, str) or not isinstance(name, str):
        return None
    return Operator(subject=subject, name=name, email=email if isinstance(email, str) else None)


def log_in(session: dict[str, Any], operator: Operator, ttl: int) -> None:
    """Replace whatever the session held by a fresh login: new CSRF token, new expiry."""
    session.clear()
    session[OPERATOR_KEY] = {
        "sub": operator.subject,
        "name": operator.name,
        "email": operator.email,
    }
    session[CSRF_KEY] = secrets.token_urlsafe(32)
    session[EXPIRES_KEY] = int(time.time()) + ttl


def safe_next(target: str | None) -> str:
    """``target`` if it is a path inside the admin UI, else the dashboard.

    Only a path is accepted (no scheme, no host, no ``//``), so that the login cannot
    be used to redirect anywhere else.
    """
    if not target:
        return ADMIN_PATH
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//") or "\\" in target:
        return ADMIN_PATH
    if not is_admin_path(parts.path):
        return ADMIN_PATH
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def current_operator(request: Request) -> Operator:
    """FastAPI dependency of every admin page and action.

    No valid session: redirects (303) to the login, which brings the operator back
    here. A session whose user lost admin rights is never created: the callback shows
    the 403 page instead.
    """
    operator = operator_in(session_of(request))
    if operator is None:
        raise LoginRequired(_return_path(request))
    return operator


def csrf_token(request: Request) -> str:
    """The session's CSRF token, for templates (forms and htmx's hx-headers).

    Raises ``LoginRequired`` without a logged-in session: a form needs one.
    """
    session = session_of(request)
    if operator_in(session) is None:
        raise LoginRequired(_return_path(request))
    token: str = session[CSRF_KEY]
    return token


async def verify_csrf(request: Request) -> None:
    """FastAPI dependency of every unsafe admin request: the X-CSRF-Token header (htmx)
    or the csrf_token form field must equal the session's; else 403.

    Safe methods pass, so that a router may declare it once for all its routes. The
    header is checked first so that an htmx upload is not parsed here to find a field.
    """
    if request.method in SAFE_METHODS:
        return
    session = session_of(request)
    expected = session.get(CSRF_KEY) if operator_in(session) is not None else None
    supplied = request.headers.get(CSRF_HEADER)
    if supplied is None and request.headers.get("content-type", "").startswith(_FORM_TYPES):
        # Starlette keeps the parsed form on the request, so the endpoint reads it again.
        value = (await request.form()).get(CSRF_FIELD)
        supplied = value if isinstance(value, str) else None
    if not isinstance(expected, str) or not supplied:
        raise CsrfRejected
    if not hmac.compare_digest(expected.encode(), supplied.encode()):
        raise CsrfRejected


def _return_path(request: Request) -> str:
    # htmx asks for fragments; after logging in the operator wants the page they were on.
    if request.headers.get("HX-Request") == "true":
        current = request.headers.get("HX-Current-URL")
        if current:
            parts = urlsplit(current)
            path = route_path(request.scope, parts.path)
            return safe_next(path + (f"?{parts.query}" if parts.query else ""))
    if request.method not in SAFE_METHODS:
        return ADMIN_PATH
    query = request.url.query
    return safe_next(route_path(request.scope) + (f"?{query}" if query else ""))
