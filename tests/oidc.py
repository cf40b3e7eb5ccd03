"""A real OpenID provider for the admin login tests, and a browser that speaks to it.

A pytest plugin: a test module says ``pytest_plugins = ["tests.oidc"]``. The provider
is ``herald_api.admin.dev_idp`` (Canaille, in a thread, on a free port), seeded as
``herald run`` seeds it, with herald's redirect URI on ``https://herald.test``, a host
the provider trusts, so there is no consent page. ``Browser`` sends herald.test to the
app over ASGI and everything else over the network, one cookie jar for both, as a
browser would; ``log_in`` goes through the provider's own login form.
"""

import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import NoMatchFound

from herald_api.admin.auth import install_admin_auth
from herald_api.admin.auth.dependencies import CSRF_KEY, OPERATOR_KEY, Operator
from herald_api.admin.auth.session import COOKIE_NAME, EXPIRES_KEY, SessionCodec
from herald_api.admin.dev_idp import DevIdentityProvider, Login, Seeded, api_environment, seed
from herald_api.admin_settings import AdminSettings

HERALD_HOST = "herald.test"
HERALD_URL = f"https://{HERALD_HOST}"
REDIRECT_URI = f"{HERALD_URL}/admin/callback"
SESSION_SECRET = "a-test-session-secret-of-enough-length"
SESSION_TTL = 3600


@dataclass(frozen=True)
class IdentityProvider:
    """The running provider and what it was seeded with."""

    issuer: str
    admin: Login
    user: Login
    seeded: Seeded
    provider: DevIdentityProvider

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The api's HERALD_ADMIN_* values (as settings fields) for this provider."""
        values: dict[str, Any] = {
            name.removeprefix("HERALD_").lower(): value
            for name, value in api_environment(self.provider, self.seeded).items()
        }
        values |= {"admin_session_secret": SESSION_SECRET, "admin_session_ttl": SESSION_TTL}
        return values | overrides


@pytest.fixture(scope="session")
def identity_provider() -> Iterator[IdentityProvider]:
    with DevIdentityProvider(port=0, trusted_hosts=(HERALD_HOST,)) as provider:
        seeded = seed(provider, redirect_uri=REDIRECT_URI)
        yield IdentityProvider(
            issuer=provider.issuer,
            admin=seeded.admin,
            user=seeded.user,
            seeded=seeded,
            provider=provider,
        )


def install_login(app: FastAPI, settings: AdminSettings) -> None:
    """The login on ``app``, unless ``create_app`` mounted it already (with the pages)."""
    try:
        app.url_path_for("admin_login")
    except NoMatchFound:
        pass
    else:
        return
    router = install_admin_auth(app, settings)
    assert router is not None
    app.include_router(router)


@dataclass
class Form:
    """A form of a page: where it posts, and the values a browser would send."""

    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: set[str] = field(default_factory=set)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(
                Form(attributes.get("action", ""), attributes.get("method", "get").lower())
            )
        elif tag in ("input", "button") and self.forms and attributes.get("name"):
            kind = attributes.get("type", "submit" if tag == "button" else "text")
            if kind == "submit":
                self.forms[-1].buttons.add(attributes["name"])
            elif kind != "checkbox" or "checked" in attributes:
                self.forms[-1].fields[attributes["name"]] = attributes.get("value", "")


def forms_of(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


class Browser:
    """An HTTP client with a cookie jar, reaching herald over ASGI and the provider over
    the network."""

    def __init__(self, app: FastAPI, base_url: str = HERALD_URL) -> None:
        self.host = httpx.URL(base_url).host
        self.client = httpx.AsyncClient(
            mounts={base_url: httpx.ASGITransport(app=app)}, base_url=base_url, timeout=10
        )

    async def __aenter__(self) -> "Browser":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.aclose()

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post(url, **kwargs)

    async def submit(
        self, page: httpx.Response, values: dict[str, str], **kwargs: Any
    ) -> httpx.Response:
        """Fill in the page's form that has these fields (or buttons), and post it."""
        form = next(f for f in forms_of(page.text) if set(values) <= set(f.fields) | f.buttons)
        url = page.url.join(form.action) if form.action else page.url
        return await self.client.post(url, data=form.fields | values, **kwargs)

    def session_cookie(self) -> str | None:
        return self.client.cookies.get(COOKIE_NAME, domain=self.host)

    def set_session_cookie(self, value: str) -> None:
        """Replace the session cookie, as a browser that was given this one would hold it."""
        self.client.cookies.delete(COOKIE_NAME, domain=self.host)
        self.client.cookies.set(COOKIE_NAME, value, domain=self.host, path="/admin")


async def log_in(
    browser: Browser, login: Login, start: str = "/admin/login"
) -> tuple[httpx.Response, list[httpx.Response]]:
    """Log in through the provider's login and password forms, following every redirect
    back to herald. Returns the last response and every one before it, in order."""
    chain: list[httpx.Response] = []

    async def follow(response: httpx.Response) -> httpx.Response:
        chain.extend([*response.history, response])
        return response

    page = await follow(await browser.get(start, follow_redirects=True))
    assert page.status_code == 200, page.text
    assert "login" in forms_of(page.text)[0].fields, page.text
    page = await follow(
        await browser.submit(page, {"login": login.username}, follow_redirects=True)
    )
    page = await follow(
        await browser.submit(page, {"password": login.password}, follow_redirects=True)
    )
    return page, chain


def session_cookie(operator: Operator, expires_in: float = SESSION_TTL) -> str:
    """A session cookie value as herald signs it, without a login, for page tests."""
    codec = SessionCodec(SESSION_SECRET, max_age=SESSION_TTL)
    return codec.encode(
        {
            OPERATOR_KEY: {"sub": operator.subject, "name": operator.name, "email": operator.email},
            CSRF_KEY: "csrf-token-of-a-forged-session",
            EXPIRES_KEY: int(time.time() + expires_in),
        }
    )


@pytest.fixture
async def browser_factory() -> AsyncIterator[Callable[..., Browser]]:
    """Browsers for one test (each with its own cookie jar), closed after it."""
    opened: list[Browser] = []

    def open_browser(app: FastAPI, base_url: str = HERALD_URL) -> Browser:
        opened.append(Browser(app, base_url))
        return opened[-1]

    yield open_browser
    for browser in opened:
        await browser.client.aclose()
