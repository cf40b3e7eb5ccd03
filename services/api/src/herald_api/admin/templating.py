"""The admin UI's Jinja2 environment and how a page becomes a response.

Autoescaping is on for every template, and an undefined name is an error rather than an
empty string, so that a template bug fails its test instead of rendering a blank. Every
page is sent with a Content-Security-Policy that allows only herald's own files: the
templates carry no inline script or style, and htmx is configured (``htmx-config`` in
the base layout) to evaluate nothing and inject no style of its own.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from herald_api.admin.forms import rate_input
from herald_common.domain import MailingStatus, MessageStatus

ADMIN_PATH = "/admin"
STATIC_PATH = f"{ADMIN_PATH}/static"
# The login's logout route (herald_api.admin.auth), which the layout's button posts to.
LOGOUT_PATH = f"{ADMIN_PATH}/logout"
STATIC_DIR = Path(__file__).parent / "static"
TEMPLATES_DIR = Path(__file__).parent / "templates"

# Pico CSS draws its form icons from data: URIs, hence img-src data:. No form-action: the
# logout form's answer redirects to the identity provider, which form-action would block.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# Pages show live, per-operator data: never from a cache, never from the back button's.
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def root_path(request: Request) -> str:
    """The prefix a proxy mounts herald under; links are paths, as /docs makes them."""
    return str(request.scope.get("root_path", "")).rstrip("/")


@jinja2.pass_context
def _url(context: Mapping[str, Any], name: str, **params: Any) -> str:
    """The path of the named admin route; ``query`` (a mapping) becomes its query string,
    its empty values left out."""
    request: Request = context["request"]
    query = params.pop("query", None) or {}
    path = root_path(request) + str(request.app.url_path_for(name, **params))
    kept = {key: value for key, value in query.items() if value not in (None, "")}
    return f"{path}?{urlencode(kept, doseq=True)}" if kept else path


@jinja2.pass_context
def _static(context: Mapping[str, Any], path: str) -> str:
    request: Request = context["request"]
    return f"{root_path(request)}{STATIC_PATH}/{path}"


@jinja2.pass_context
def _logout_url(context: Mapping[str, Any]) -> str:
    request: Request = context["request"]
    return root_path(request) + LOGOUT_PATH


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _local(moment: datetime | None) -> str:
    """A time in its own offset, as the preview shows a zone's local first send."""
    if moment is None:
        return "—"
    offset = moment.strftime("%z")  # +0300
    return f"{moment:%Y-%m-%d %H:%M} ({offset[:3]}:{offset[3:5]})"


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat()


environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.globals.update(
    url=_url,
    static=_static,
    logout_url=_logout_url,
    message_statuses=[status.value for status in MessageStatus],
    mailing_statuses=[status.value for status in MailingStatus],
)
environment.filters.update(utc=_utc, local=_local, iso=_iso, rate=rate_input)


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status_code: int = 200,
) -> HTMLResponse:
    html = environment.get_template(template).render({"request": request, **context})
    return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
