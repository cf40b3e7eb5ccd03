"""Every admin page renders for a logged-in operator, from herald's own files only, under a
Content-Security-Policy that its markup respects (no inline script or style)."""

import hashlib
import json
from html.parser import HTMLParser
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.admin.templating import CONTENT_SECURITY_POLICY
from herald_common.domain import MessageStatus
from tests.integration.api.admin.conftest import CSRF_TOKEN
from tests.integration.api.admin.factories import add_client, add_mailing
from tests.integration.api.factories import add_messages, create_api_key

VENDOR = files("herald_api") / "admin" / "static" / "vendor"


class Markup(HTMLParser):
    """What a browser would load and run from a page, and the forms it could submit."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[str] = []
        self.inline_scripts = 0
        self.inline_styles = 0
        self.handler_attributes: list[str] = []
        self.forms: list[dict[str, str | None]] = []
        self.csrf_fields = 0
        self.body: dict[str, str | None] = {}
        self._in_script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            if attributes.get("src"):
                self.assets.append(str(attributes["src"]))
            else:
                self.inline_scripts += 1
        if tag == "link" and attributes.get("rel") == "stylesheet":
            self.assets.append(str(attributes["href"]))
        if tag == "style" or "style" in attributes:
            self.inline_styles += 1
        self.handler_attributes += [name for name in attributes if name.startswith(("on", "hx-on"))]
        if tag == "form":
            self.forms.append(attributes)
        if tag == "input" and attributes.get("name") == "csrf_token":
            assert attributes.get("value") == CSRF_TOKEN
            self.csrf_fields += 1
        if tag == "body":
            self.body = attributes


def markup(page: str) -> Markup:
    parser = Markup()
    parser.feed(page)
    return parser


@pytest.fixture
async def seeded(
    admin: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> dict[str, int]:
    client = await add_client(sessionmaker, 1, tag="vip")
    mailing = await add_mailing(sessionmaker, filter={"tags": ["vip"]})
    await add_messages(sessionmaker, mailing.id, [MessageStatus.sent, MessageStatus.failed])
    await create_api_key(sessionmaker, "billing")
    return {"client": client.id, "mailing": mailing.id, "key": 1}


PAGES = [
    ("/admin", "Dashboard"),
    ("/admin/mailings", "Mailings"),
    ("/admin/mailings/new", "New mailing"),
    ("/admin/mailings/{mailing}", "Mailing #{mailing}"),
    ("/admin/mailings/{mailing}/edit", "Edit mailing #{mailing}"),
    ("/admin/mailings/{mailing}/cancel", "Cancel mailing #{mailing}?"),
    ("/admin/mailings/{mailing}/delete", "Delete mailing #{mailing}?"),
    ("/admin/clients", "Clients"),
    ("/admin/clients/new", "New client"),
    ("/admin/clients/import", "Import clients"),
    ("/admin/clients/{client}/edit", "Edit client #{client}"),
    ("/admin/clients/{client}/delete", "Delete client #{client}?"),
    ("/admin/api-keys", "API keys"),
    ("/admin/api-keys/{key}/revoke", "Revoke API key #{key}?"),
]


@pytest.mark.parametrize(("path", "heading"), PAGES)
async def test_every_page_renders_for_an_operator(
    admin: httpx.AsyncClient, seeded: dict[str, int], path: str, heading: str
) -> None:
    response = await admin.get(path.format(**seeded))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert heading.format(**seeded) in response.text
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-store"
    page = markup(response.text)
    # The layout: the nav, and logout as a POST form carrying the token.
    for section in ("/admin/mailings", "/admin/clients", "/admin/api-keys"):
        assert f'href="{section}"' in response.text
    logout = [form for form in page.forms if form.get("action") == "/admin/logout"]
    assert logout == [{"method": "post", "action": "/admin/logout", "class": "logout"}]
    assert json.loads(str(page.body["hx-headers"])) == {"X-CSRF-Token": CSRF_TOKEN}
    # Every form that changes something carries the token.
    posting = [form for form in page.forms if form.get("method") == "post"]
    assert page.csrf_fields == len(posting) >= 1
    # Nothing a strict CSP would block, nothing from another host.
    assert page.inline_scripts == 0
    assert page.inline_styles == 0
    assert page.handler_attributes == []
    assert page.assets
    for url in page.assets:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("", ""), url
        assert url.startswith("/admin/static/"), url


async def test_every_asset_a_page_loads_is_served_and_vendored_ones_are_recorded(
    admin: httpx.AsyncClient, seeded: dict[str, int]
) -> None:
    page = markup((await admin.get(f"/admin/mailings/{seeded['mailing']}")).text)
    recorded = manifest()["files"]
    assert len(page.assets) == 5  # Pico, admin.css, htmx, Chart.js, admin.js
    for url in page.assets:
        response = await admin.get(url)
        assert response.status_code == 200, url
        vendored = url.removeprefix("/admin/static/vendor/")
        if vendored != url:
            assert vendored in recorded, url
            assert hashlib.sha256(response.content).hexdigest() == recorded[vendored]["sha256"]


def manifest() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((VENDOR / "vendor.json").read_text())
    return document


def test_the_vendored_files_are_the_ones_the_manifest_records() -> None:
    recorded = manifest()["files"]
    on_disk = {
        f"{directory.name}/{item.name}"
        for directory in VENDOR.iterdir()
        if directory.is_dir()
        for item in directory.iterdir()
    }
    assert on_disk == set(recorded)
    packages = {entry["package"]: entry["version"] for entry in recorded.values()}
    assert packages["htmx.org"].startswith("2.")
    assert packages["chart.js"].startswith("4.")
    assert packages["@picocss/pico"].startswith("2.")
    for path, entry in recorded.items():
        content = VENDOR.joinpath(*path.split("/")).read_bytes()
        assert hashlib.sha256(content).hexdigest() == entry["sha256"], path
        assert len(content) == entry["bytes"], path


async def test_an_unknown_mailing_is_a_404_page(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/admin/mailings/999")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "no mailing with id 999" in response.text


async def test_an_invalid_query_is_a_422_page_naming_the_parameter(
    admin: httpx.AsyncClient,
) -> None:
    response = await admin.get("/admin/mailings", params={"status": "halted"})

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "status: must be one of scheduled, running, paused, finished, cancelled" in response.text
