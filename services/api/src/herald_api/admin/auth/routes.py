"""The login, callback, logout and logged-out routes, and the pages they answer with.

``install`` wires them into an app: the session middleware, the handlers that turn
``LoginRequired`` and ``CsrfRejected`` into a redirect and a 403 page, and the router.
"""

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import structlog
from fastapi import APIRouter, FastAPI
from jinja2 import Environment, FileSystemLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from herald_api.admin.auth.dependencies import (
    CsrfRejected,
    LoginRequired,
    Operator,
    log_in,
    operator_in,
    safe_next,
    session_of,
    verify_csrf,
)
from herald_api.admin.auth.provider import LoginFailed, Provider
from herald_api.admin.auth.rule import AdminRule
from herald_api.admin.auth.session import (
    ADMIN_PATH,
    EXPIRES_KEY,
    AdminSessionMiddleware,
    SessionCodec,
    root_path,
)
from herald_api.admin_settings import AdminSettings

log = structlog.get_logger()

NEXT_KEY = "next"
# How long a started login may take at the provider before its state is dropped.
LOGIN_WINDOW_SECONDS = 600
# The pages have one inline stylesheet and nothing else to load, frame or post to.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True
)


class AdminUrls:
    """Where the admin UI is, as the browser and the provider see it: under
    HERALD_ADMIN_PUBLIC_URL when a proxy rewrites the scheme, host or path, else where
    the request says (its root path included)."""

    def __init__(self, public_url: str | None) -> None:
        self.public_url = public_url.rstrip("/") if public_url else None
        # The cookie's path, fixed when the public URL names it; else per request.
        self.public_path = (urlsplit(self.public_url).path or "/") if self.public_url else None

    def path(self, request: Request, suffix: str = "") -> str:
        """A path the browser can follow, e.g. for a Location header."""
        return (self.public_path or root_path(request.scope) + ADMIN_PATH) + suffix

    def absolute(self, request: Request, suffix: str) -> str:
        """An absolute URL for the provider (redirect URIs)."""
        if self.public_url:
            return self.public_url + suffix
        return str(request.base_url).rstrip("/") + ADMIN_PATH + suffix


def render(template: str, status_code: int, **context: Any) -> HTMLResponse:
    return HTMLResponse(
        TEMPLATES.get_template(template).render(**context), status_code, headers=PAGE_HEADERS
    )


def operator_from_claims(claims: dict[str, Any]) -> Operator:
    subject = str(claims["sub"])
    email = claims.get("email") if isinstance(claims.get("email"), str) else None
    name = next(
        (
            value
            for value in (claims.get("name"), claims.get("preferred_username"), email)
            if isinstance(value, str) and value
        ),
        subject,
    )
    return Operator(subject=subject, name=name, email=email)


def build_router(provider: Provider, settings: AdminSettings, urls: AdminUrls) -> APIRouter:
    rule = AdminRule.from_settings(settings)
    router = APIRouter(prefix=ADMIN_PATH, include_in_schema=False)

    def failed(request: Request, failure: LoginFailed) -> HTMLResponse:
        log.warning("admin.login_failed", reason=failure.message)
        return render(
            "login_error.html",
            failure.status_code,
            message=failure.message,
            login_url=urls.path(request, "/login"),
        )

    @router.get("/login", name="admin_login")
    async def login(request: Request, next: str | None = None) -> Response:
        session = session_of(request)
        target = safe_next(next)
        if operator_in(session) is not None:
            return RedirectResponse(urls.path(request, target.removeprefix(ADMIN_PATH)), 303)
        session.clear()
        try:
            response = await provider.authorize_redirect(
                request, urls.absolute(request, "/callback")
            )
        except LoginFailed as failure:
            return failed(request, failure)
        session[NEXT_KEY] = target
        session[EXPIRES_KEY] = int(time.time()) + LOGIN_WINDOW_SECONDS
        return response

    @router.get("/callback", name="admin_callback")
    async def callback(request: Request) -> Response:
        session = session_of(request)
        target = safe_next(session.get(NEXT_KEY))
        try:
            claims = await provider.claims(request, rule)
        except LoginFailed as failure:
            session.clear()
            return failed(request, failure)
        operator = operator_from_claims(claims)
        if not rule.admits(claims):
            # No session: a user who is not an admin leaves with no cookie at all.
            session.clear()
            log.warning("admin.login_denied", subject=operator.subject, claim=rule.claim)
            return render("forbidden.html", 403, operator=operator, claim=rule.claim)
        log_in(session, operator, settings.admin_session_ttl)
        log.info("admin.login", subject=operator.subject, operator=operator.name)
        return RedirectResponse(urls.path(request, target.removeprefix(ADMIN_PATH)), 303)

    @router.post("/logout", name="admin_logout")
    async def logout(request: Request) -> Response:
        session = session_of(request)
        operator = operator_in(session)
        if operator is None:
            # Nothing to protect: an expired session just goes.
            session.clear()
            return RedirectResponse(urls.path(request, "/logged-out"), 303)
        await verify_csrf(request)
        session.clear()
        log.info("admin.logout", subject=operator.subject)
        end_session = await provider.end_session_url(urls.absolute(request, "/logged-out"))
        return RedirectResponse(end_session or urls.path(request, "/logged-out"), 303)

    @router.get("/logged-out", name="admin_logged_out")
    async def logged_out(request: Request) -> Response:
        return render("logged_out.html", 200, login_url=urls.path(request, "/login"))

    return router


def install(app: FastAPI, settings: AdminSettings) -> APIRouter:
    """The middleware and error handlers on ``app``; the router for the caller to mount."""
    secret = settings.admin_session_secret
    assert secret is not None  # AdminSettings refuses an issuer without it
    urls = AdminUrls(settings.admin_public_url)
    app.add_middleware(
        AdminSessionMiddleware,
        codec=SessionCodec(secret.get_secret_value(), max_age=settings.admin_session_ttl),
        secure=settings.admin_cookie_secure,
        cookie_path=urls.public_path,
    )

    async def login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        login_url = urls.path(request, "/login") + "?" + urlencode({"next": exc.next_path})
        if request.headers.get("HX-Request") == "true":
            # htmx would follow a 303 inside its XMLHttpRequest and swap the provider's
            # login page into a fragment; HX-Redirect makes it load the whole page.
            return Response(status_code=401, headers={"HX-Redirect": login_url})
        return RedirectResponse(login_url, 303)

    async def csrf_rejected(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CsrfRejected)
        log.warning("admin.csrf_rejected")
        return render("forbidden.html", 403, csrf=True, login_url=urls.path(request, "/login"))

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(CsrfRejected, csrf_rejected)
    return build_router(Provider(settings), settings, urls)
