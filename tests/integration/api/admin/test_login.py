"""Operators log in to /admin through a real OpenID provider (Canaille), and only admins.

The app is the real one (lifespan and all), configured for the provider, plus a tiny
router of test-only pages that depend on ``current_operator`` and ``verify_csrf``.
"""

from collections.abc import AsyncIterator, Callable
from typing import Annotated
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import structlog
from fastapi import APIRouter, Depends, FastAPI, Request

from herald_api.admin.auth import (
    Operator,
    csrf_token,
    current_operator,
    install_admin_auth,
    verify_csrf,
)
from herald_api.admin.auth.provider import Discovery, Provider
from herald_api.admin.auth.session import COOKIE_NAME
from herald_api.app import create_app
from herald_api.settings import ApiSettings
from herald_common.settings import HeraldSettings
from tests.integration.api.conftest import api_settings
from tests.oidc import (
    HERALD_URL,
    REDIRECT_URI,
    SESSION_TTL,
    Browser,
    IdentityProvider,
    install_login,
    log_in,
    session_cookie,
)

PROTECTED = "/admin/_test/whoami"
ACTION = "/admin/_test/action"

protected_pages = APIRouter()


@protected_pages.get(PROTECTED)
async def whoami(operator: Annotated[Operator, Depends(current_operator)]) -> dict[str, str | None]:
    return {"subject": operator.subject, "name": operator.name, "email": operator.email}


@protected_pages.get("/admin/_test/token", dependencies=[Depends(current_operator)])
async def token(request: Request) -> dict[str, str]:
    return {"csrf": csrf_token(request)}


@protected_pages.post(ACTION, dependencies=[Depends(current_operator), Depends(verify_csrf)])
async def action() -> dict[str, bool]:
    return {"done": True}


def admin_api_settings(
    settings: HeraldSettings, identity_provider: IdentityProvider, **overrides: object
) -> ApiSettings:
    return api_settings(settings, **identity_provider.settings(**overrides))


@pytest.fixture(scope="module")
async def admin_app(
    settings: HeraldSettings, identity_provider: IdentityProvider
) -> AsyncIterator[FastAPI]:
    app = create_app(admin_api_settings(settings, identity_provider))
    # With an issuer configured, create_app mounts the login (mount_admin).
    assert app.url_path_for("admin_login") == "/admin/login"
    # Ahead of the admin pages' own routes, whatever paths those match.
    for route in reversed(protected_pages.routes):
        app.router.routes.insert(0, route)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def browser(admin_app: FastAPI, browser_factory: Callable[..., Browser]) -> Browser:
    return browser_factory(admin_app)


async def logged_in(browser: Browser, identity_provider: IdentityProvider) -> str:
    """Log the browser in as the admin; the session's CSRF token."""
    page, _ = await log_in(browser, identity_provider.admin, start=PROTECTED)
    assert page.status_code == 200, page.text
    response = await browser.get("/admin/_test/token")
    token: str = response.json()["csrf"]
    return token


def response_to(chain: list[httpx.Response], path: str) -> httpx.Response:
    return next(r for r in chain if r.request.url.path == path and r.url.host == "herald.test")


async def test_an_admin_logs_in_through_the_providers_form_and_comes_back(
    browser: Browser, identity_provider: IdentityProvider
) -> None:
    page, chain = await log_in(browser, identity_provider.admin, start=PROTECTED)

    assert page.status_code == 200, page.text
    assert page.url == f"{HERALD_URL}{PROTECTED}"
    assert page.json() == {
        "subject": identity_provider.admin.username,
        "name": identity_provider.admin.name,
        "email": identity_provider.admin.email,
    }
    hosts = [r.url.host for r in chain]
    issuer_host = urlsplit(identity_provider.issuer).hostname
    assert hosts[0] == "herald.test"
    assert issuer_host in hosts, hosts
    # The protected page sent the operator to the login, which came back to it.
    first = chain[0]
    assert first.status_code == 303
    assert first.headers["location"] == "/admin/login?next=%2Fadmin%2F_test%2Fwhoami"
    # And they stay logged in.
    again = await browser.get(PROTECTED)
    assert again.status_code == 200
    assert again.json()["subject"] == identity_provider.admin.username


async def test_the_authorization_request_sends_a_pkce_s256_challenge(
    browser: Browser, identity_provider: IdentityProvider
) -> None:
    response = await browser.get("/admin/login")

    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}" == identity_provider.issuer
    query = parse_qs(location.query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43  # base64url of a SHA-256 digest
    assert "code_verifier" not in query
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == [REDIRECT_URI]
    assert set(query["scope"][0].split()) == {"openid", "profile", "email", "groups"}
    assert query["nonce"]
    assert query["state"]


async def test_the_provider_refuses_an_authorization_without_pkce(
    browser: Browser, identity_provider: IdentityProvider
) -> None:
    await logged_in(browser, identity_provider)  # an open session at the provider
    discovery = (
        await browser.get(f"{identity_provider.issuer}/.well-known/openid-configuration")
    ).json()

    refused = await browser.get(
        discovery["authorization_endpoint"],
        params={
            "response_type": "code",
            "client_id": identity_provider.seeded.client.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid groups",
            "state": "no-pkce",
            "nonce": "no-pkce",
        },
    )

    assert refused.status_code == 302
    query = parse_qs(urlsplit(refused.headers["location"]).query)
    assert query["error"] == ["invalid_request"]
    assert "PKCE" in query["error_description"][0]
    assert "code" not in query


async def test_someone_who_is_not_an_admin_gets_the_403_page_and_no_session(
    browser: Browser, identity_provider: IdentityProvider
) -> None:
    page, chain = await log_in(browser, identity_provider.user, start=PROTECTED)

    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "You are not a herald admin" in page.text
    assert identity_provider.user.name in page.text
    assert "<code>groups</code>" in page.text
    assert browser.session_cookie() is None
    # The callback deleted the cookie the login had started with.
    callback = response_to(chain, "/admin/callback")
    assert callback.headers["set-cookie"].startswith(f'{COOKIE_NAME}="";')
    assert "Max-Age=0" in callback.headers["set-cookie"]
    assert (await browser.get(PROTECTED)).status_code == 303


async def test_the_session_cookie_is_httponly_lax_secure_and_only_on_admin(
    browser: Browser, identity_provider: IdentityProvider
) -> None:
    _, chain = await log_in(browser, identity_provider.admin, start=PROTECTED)

    header = response_to(chain, "/admin/callback").headers["set-cookie"]
    name_value, *attributes = (part.strip() for part in header.split(";"))
    assert name_value.startswith(f"{COOKIE_NAME}=")
    assert len(name_value) > 40
    assert set(attributes) == {
        "HttpOnly",
        "Path=/admin",
        "SameSite=Lax",
        "Secure",
        f"Max-Age={SESSION_TTL}",
    }


async def test_without_secure_configured_the_cookie_works_over_plain_http(
    settings: HeraldSettings, identity_provider: IdentityProvider
) -> None:
    local = admin_api_settings(settings, identity_provider, admin_cookie_secure=False)
    app = FastAPI()
    install_login(app, local)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000"
    ) as client:
        response = await client.get("/admin/login")

    assert response.status_code == 302
    attributes = {part.strip() for part in response.headers["set-cookie"].split(";")}
    assert {"HttpOnly", "Path=/admin", "SameSite=Lax"} <= attributes
    assert "Secure" not in attributes


async def test_behind_a_root_path_the_cookie_and_the_redirects_carry_it(
    admin_app: FastAPI,
) -> None:
    transport = httpx.ASGITransport(app=admin_app, root_path="/herald")
    async with httpx.AsyncClient(transport=transport, base_url=HERALD_URL) as client:
        protected = await client.get(f"/herald{PROTECTED}")
        login = await client.get("/herald/admin/login")

    assert protected.status_code == 303
    assert protected.headers["location"] == "/herald/admin/login?next=%2Fadmin%2F_test%2Fwhoami"
    assert login.status_code == 302
    assert "Path=/herald/admin" in login.headers["set-cookie"]
    redirect_uri = parse_qs(urlsplit(login.headers["location"]).query)["redirect_uri"]
    assert redirect_uri == [f"{HERALD_URL}/herald/admin/callback"]


async def test_the_rest_api_ignores_a_valid_admin_cookie(
    browser: Browser, identity_provider: IdentityProvider
) -> None:
    await logged_in(browser, identity_provider)
    cookie = browser.session_cookie()
    assert cookie is not None
    assert (await browser.get(PROTECTED)).status_code == 200

    # Sent by hand: the browser itself would not, the cookie's path being /admin.
    response = await browser.get("/api/v1/clients", headers={"Cookie": f"{COOKIE_NAME}={cookie}"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_a_tampered_cookie_sends_the_browser_to_the_login(
    browser: Browser, identity_provider: IdentityProvider
) -> None:
    await logged_in(browser, identity_provider)
    cookie = browser.session_cookie()
    assert cookie is not None
    # Another character in the signed payload: the signature no longer matches.
    where = next(i for i in range(len(cookie) // 3, len(cookie)) if cookie[i] != ".")
    forged = cookie[:where] + ("A" if cookie[where] != "A" else "B") + cookie[where + 1 :]
    browser.set_session_cookie(forged)

    response = await browser.get(PROTECTED)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login?next=")
    # The unreadable cookie is deleted.
    assert "Max-Age=0" in response.headers["set-cookie"]


async def test_an_expired_session_sends_the_browser_to_the_login(browser: Browser) -> None:
    operator = Operator(subject="admin", name="Ada Admin", email="admin@herald.test")
    browser.set_session_cookie(session_cookie(operator))
    assert (await browser.get(PROTECTED)).status_code == 200
    # Signed a moment ago, so the signature is fresh: only the expiry inside says no.
    browser.set_session_cookie(session_cookie(operator, expires_in=-1))

    response = await browser.get(PROTECTED)

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/login?next=%2Fadmin%2F_test%2Fwhoami"
    assert "Max-Age=0" in response.headers["set-cookie"]


async def test_htmx_requests_without_a_session_are_told_to_load_the_login(
    browser: Browser,
) -> None:
    response = await browser.get(
        "/admin/_test/whoami",
        headers={"HX-Request": "true", "HX-Current-URL": f"{HERALD_URL}/admin/mailings?page=2"},
    )

    assert response.status_code == 401
    assert response.headers["hx-redirect"] == "/admin/login?next=%2Fadmin%2Fmailings%3Fpage%3D2"


async def test_a_post_needs_the_sessions_csrf_token(
    browser: Browser, identity_provider: IdentityProvider
) -> None:
    token = await logged_in(browser, identity_provider)

    missing = await browser.post(ACTION)
    wrong_header = await browser.post(ACTION, headers={"X-CSRF-Token": token[::-1]})
    wrong_field = await browser.post(ACTION, data={"csrf_token": "not-the-token"})
    right_header = await browser.post(ACTION, headers={"X-CSRF-Token": token})
    right_field = await browser.post(ACTION, data={"csrf_token": token, "name": "x"})

    for refused in (missing, wrong_header, wrong_field):
        assert refused.status_code == 403, refused.text
        assert "This request was refused" in refused.text
    for accepted in (right_header, right_field):
        assert accepted.status_code == 200, accepted.text
        assert accepted.json() == {"done": True}


async def test_logout_ends_the_session_and_the_providers(
    browser: Browser, identity_provider: IdentityProvider
) -> None:
    token = await logged_in(browser, identity_provider)

    refused = await browser.post("/admin/logout")
    assert refused.status_code == 403
    assert (await browser.get(PROTECTED)).status_code == 200

    response = await browser.post("/admin/logout", data={"csrf_token": token})

    assert response.status_code == 303
    assert browser.session_cookie() is None
    end_session = urlsplit(response.headers["location"])
    assert f"{end_session.scheme}://{end_session.netloc}{end_session.path}" == (
        f"{identity_provider.issuer}/oauth/end_session"
    )
    query = parse_qs(end_session.query)
    assert query["client_id"] == [identity_provider.seeded.client.client_id]
    assert query["post_logout_redirect_uri"] == [f"{HERALD_URL}/admin/logged-out"]
    assert "id_token_hint" not in query
    assert (await browser.get(PROTECTED)).status_code == 303

    # Without an id_token_hint the provider asks the user to confirm, then comes back.
    confirm = await browser.get(response.headers["location"])
    assert confirm.status_code == 200
    back = await browser.submit(confirm, {"answer": "logout"}, follow_redirects=True)
    assert back.status_code == 200
    assert back.url.path == "/admin/logged-out"
    assert "You are logged out" in back.text
    # The provider's session is over too: logging in shows its form again.
    page, _ = await log_in(browser, identity_provider.admin, start=PROTECTED)
    assert page.status_code == 200


async def test_logout_without_an_end_session_endpoint_only_clears_the_session(
    browser: Browser, identity_provider: IdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await logged_in(browser, identity_provider)

    async def without_end_session(provider: Provider) -> Discovery:
        return Discovery(issuer=provider.issuer, end_session_endpoint=None, userinfo_endpoint=None)

    monkeypatch.setattr(Provider, "discover", without_end_session)

    response = await browser.post("/admin/logout", headers={"X-CSRF-Token": token})

    assert response.status_code == 303
    assert response.headers["location"] == "/admin/logged-out"
    assert browser.session_cookie() is None


async def test_a_refusal_from_the_provider_shows_the_login_error_page(
    browser: Browser,
) -> None:
    started = await browser.get("/admin/login")
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]

    response = await browser.get(
        "/admin/callback",
        params={"error": "access_denied", "error_description": "the user said no", "state": state},
    )

    assert response.status_code == 400
    assert "The login did not complete" in response.text
    assert "the user said no" in response.text
    assert browser.session_cookie() is None


async def test_a_callback_this_browser_did_not_start_is_refused(browser: Browser) -> None:
    response = await browser.get("/admin/callback", params={"code": "stolen", "state": "forged"})

    assert response.status_code == 400
    assert "did not start this login" in response.text
    assert browser.session_cookie() is None


def test_without_an_issuer_the_login_is_off_and_the_log_says_why(
    settings: HeraldSettings,
) -> None:
    app = FastAPI()

    with structlog.testing.capture_logs() as logs:
        router = install_admin_auth(app, api_settings(settings))

    assert router is None
    [line] = [entry for entry in logs if entry["event"] == "admin.disabled"]
    assert "HERALD_ADMIN_OIDC_ISSUER is not set" in line["reason"]
    assert app.user_middleware == []
