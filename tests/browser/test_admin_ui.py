"""The admin UI in Debian's Chromium, against a whole herald (api, scheduler, senders and the
stub as processes) and a real OpenID provider (Canaille): an operator logs in through the
provider's own form, creates a mailing with the audience preview, watches it reach
`sent`, edits and deletes it; a non-admin gets the 403 page; a POST without the CSRF
token is refused; logging out ends the session. Screenshots of every page at 1280 and
390 px wide are saved under tests/artifacts/ (git-ignored)."""

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from bench.system import free_port
from herald_api.admin.auth.dependencies import OPERATOR_KEY
from herald_api.admin.auth.session import COOKIE_NAME, SessionCodec
from herald_api.admin.dev_idp import DevIdentityProvider, Login, api_environment, seed
from tests.conftest import fresh_vhost
from tests.e2e.system import System, running_system
from tests.e2e.test_dispatch import import_clients, phone

pytestmark = pytest.mark.timeout(180)

WIDTHS = {"desktop": 1280, "phone": 390}
CLIENTS = 40


class AdminSystem:
    def __init__(self, system: System, admin: Login, user: Login, session_secret: str) -> None:
        self.system = system
        self.admin = admin
        self.user = user
        self.url = f"http://127.0.0.1:{system.api_port}/admin"
        self.sessions = SessionCodec(session_secret, max_age=3600)

    async def operator_in_session(self, context: BrowserContext) -> object:
        """Who the browser's herald session says is logged in, if anyone."""
        cookies = [c for c in await context.cookies(self.url) if c["name"] == COOKIE_NAME]
        values = [self.sessions.decode(c["value"]) for c in cookies]
        return next((v[OPERATOR_KEY] for v in values if OPERATOR_KEY in v), None)


@pytest.fixture(scope="module")
def admin_system(
    database_server_url: str, amqp_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AdminSystem]:
    api_port = free_port()
    with ExitStack() as stack:
        provider = stack.enter_context(DevIdentityProvider(port=0))
        seeded = seed(provider, redirect_uri=f"http://127.0.0.1:{api_port}/admin/callback")
        session_secret = uuid.uuid4().hex + uuid.uuid4().hex
        env = {
            **api_environment(provider, seeded),
            "HERALD_ADMIN_SESSION_SECRET": session_secret,
            "HERALD_ADMIN_COOKIE_SECURE": "false",
        }
        vhost = f"herald-browser-{uuid.uuid4().hex[:8]}"
        system = stack.enter_context(
            running_system(
                database_server_url=database_server_url,
                amqp_url=stack.enter_context(fresh_vhost(amqp_server_url, vhost)),
                log_dir=tmp_path_factory.mktemp("browser-logs"),
                env=env,
                stub_args=["--latency-ms", "20"],
                api_port=api_port,
            )
        )
        import_clients(
            system,
            [(phone(n), "900" if n % 2 else "901", "vip", "Europe/Moscow") for n in range(CLIENTS)],
        )
        yield AdminSystem(system, seeded.admin, seeded.user, session_secret)


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    opened = await browser.new_context(viewport={"width": WIDTHS["desktop"], "height": 900})
    yield opened
    await opened.close()


async def log_in(page: Page, admin: AdminSystem, login: Login) -> None:
    """Through the provider's own forms: the login, then the password."""
    await page.goto(admin.url)
    await expect(page.locator("input[name=login]")).to_be_visible()
    await page.fill("input[name=login]", login.username)
    await page.locator("input[name=login]").press("Enter")
    await expect(page.locator("input[name=password]")).to_be_visible()
    await page.fill("input[name=password]", login.password)
    await page.locator("input[name=password]").press("Enter")


async def screenshot(page: Page, screenshots: Path, name: str) -> None:
    """The page at both widths; neither may scroll sideways."""
    for label, width in WIDTHS.items():
        await page.set_viewport_size({"width": width, "height": 900})
        await page.wait_for_timeout(150)  # let the layout settle
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{name} scrolls sideways at {width} px by {overflow} px"
        await page.screenshot(path=screenshots / f"admin-{name}-{label}.png", full_page=True)
    await page.set_viewport_size({"width": WIDTHS["desktop"], "height": 900})


async def test_an_operator_runs_a_mailing_from_login_to_delete(
    admin_system: AdminSystem, context: BrowserContext, screenshots: Path
) -> None:
    page = await context.new_page()
    await log_in(page, admin_system, admin_system.admin)
    await expect(page).to_have_url(re.compile(r"/admin/?$"))
    await expect(page.locator("h1")).to_contain_text("Dashboard")

    await page.goto(f"{admin_system.url}/mailings/new")
    await page.fill("#text", "Spring sale, from the browser")
    await page.select_option("#timezone", "Europe/Moscow")
    await page.fill("#start_local", "2020-01-01T00:00")
    await page.fill("#end_local", "2099-01-01T00:00")
    await page.check("input[name=operator_codes][value='900']")
    # The audience preview counts the clients with code 900 while the form is filled in.
    audience = page.locator("#audience")
    await expect(audience).to_contain_text(str(CLIENTS // 2), timeout=10_000)
    await expect(audience).to_contain_text("Europe/Moscow")
    await screenshot(page, screenshots, "mailing-form")

    await page.get_by_role("button", name="Create mailing").click()
    await expect(page.locator("h1")).to_contain_text("Mailing #")
    mailing_id = int(re.search(r"/mailings/(\d+)", page.url).group(1))  # type: ignore[union-attr]
    # The counters update on the page by themselves until every message is sent.
    await expect(page.locator("[data-count=sent]")).to_have_text(str(CLIENTS // 2), timeout=60_000)
    await screenshot(page, screenshots, "mailing-detail")
    assert len(admin_system.system.stub_received()) == CLIENTS // 2

    await page.locator("a", has_text="Edit").click()
    await page.fill("#text", "Spring sale, edited")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.locator(".mailing-text")).to_have_text("Spring sale, edited")
    with admin_system.system.api as api:
        assert api.get(f"/mailings/{mailing_id}").json()["text"] == "Spring sale, edited"

    await page.goto(admin_system.url)
    await expect(page.locator("h1")).to_contain_text("Dashboard")
    await screenshot(page, screenshots, "dashboard")
    await page.goto(f"{admin_system.url}/mailings")
    await screenshot(page, screenshots, "mailings")
    for name in ("clients", "api-keys"):
        await page.goto(f"{admin_system.url}/{name}")
        await expect(page.locator("h1")).to_be_visible()
        await screenshot(page, screenshots, name)

    await page.goto(f"{admin_system.url}/mailings/{mailing_id}")
    await page.locator("a", has_text="Delete").click()
    await page.get_by_role("button", name=re.compile("Delete")).click()
    with admin_system.system.api as api:
        after = api.get(f"/mailings/{mailing_id}")
    # DELETE stops a mailing for good: it answers 404, or reads as cancelled.
    assert after.status_code == 404 or after.json()["status"] == "cancelled", after.text


async def test_a_user_who_is_not_an_admin_gets_the_403_page(
    admin_system: AdminSystem, context: BrowserContext, screenshots: Path
) -> None:
    page = await context.new_page()
    await log_in(page, admin_system, admin_system.user)

    await expect(page.locator("h1")).to_have_text("You are not a herald admin")
    await page.screenshot(path=screenshots / "admin-forbidden-desktop.png")
    # No session was made: every visit goes through the provider again, and is refused.
    assert await admin_system.operator_in_session(context) is None
    await page.goto(f"{admin_system.url}/mailings")
    await expect(page.locator("h1")).to_have_text("You are not a herald admin")


async def test_a_post_without_the_csrf_token_is_refused(
    admin_system: AdminSystem, context: BrowserContext
) -> None:
    page = await context.new_page()
    await log_in(page, admin_system, admin_system.admin)
    await expect(page.locator("h1")).to_contain_text("Dashboard")
    assert await admin_system.operator_in_session(context) is not None
    with admin_system.system.api as api:
        before = api.get("/mailings").json()["items"]

    # The session cookie goes with the request, the form's token does not.
    response = await page.request.post(
        f"{admin_system.url}/mailings/new",
        form={
            "text": "forged",
            "start_local": "2020-01-01T00:00",
            "end_local": "2099-01-01T00:00",
            "timezone": "UTC",
        },
    )

    assert response.status == 403
    assert "This request was refused" in await response.text()
    with admin_system.system.api as api:
        assert api.get("/mailings").json()["items"] == before


async def test_logging_out_ends_the_session(
    admin_system: AdminSystem, context: BrowserContext
) -> None:
    page = await context.new_page()
    await log_in(page, admin_system, admin_system.admin)
    await expect(page.locator("h1")).to_contain_text("Dashboard")

    await page.get_by_role("button", name="Log out").click()
    # The provider asks to confirm (herald keeps no ID token to hint the logout with),
    # then sends the browser back to herald.
    await page.locator("button[value=logout]").click()
    await expect(page).to_have_url(re.compile(r"/admin/logged-out"))

    assert await admin_system.operator_in_session(context) is None
    await page.goto(admin_system.url)
    await expect(page.locator("input[name=login]")).to_be_visible()
