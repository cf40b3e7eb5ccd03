"""/docs works without internet: the page loads only herald's own files, each one answers,
and they are the vendored files ``vendor.json`` names, byte for byte."""

import hashlib
import json
from html.parser import HTMLParser
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from herald_api.docs import STATIC_PATH
from herald_common.broker import asyncapi

VENDOR = files("herald_api") / "static" / "vendor"
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class ReferencedUrls(HTMLParser):
    """Every ``src`` and ``href`` of a page: what a browser would fetch to render it."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in {"src", "href"} and value]


def manifest() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((VENDOR / "vendor.json").read_text())
    return document


@pytest.fixture(scope="module")
async def docs_page(anonymous: httpx.AsyncClient) -> str:
    response = await anonymous.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


@pytest.fixture(scope="module")
def asset_urls(docs_page: str) -> list[str]:
    parser = ReferencedUrls()
    parser.feed(docs_page)
    return parser.urls


def test_the_docs_page_names_no_other_host(docs_page: str, asset_urls: list[str]) -> None:
    assert len(asset_urls) == 3  # the script, the stylesheet, the favicon
    for url in asset_urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == ("", ""), url
        assert url.startswith(f"{STATIC_PATH}/vendor/"), url
    # Nor does its inline script: no CDN, and no validator badge calling swagger.io.
    assert "http://" not in docs_page
    assert "https://" not in docs_page
    assert '"validatorUrl": null' in docs_page
    assert "url: '/openapi.json'" in docs_page


async def test_every_file_the_page_loads_answers_with_its_type(
    anonymous: httpx.AsyncClient, asset_urls: list[str]
) -> None:
    for url in asset_urls:
        response = await anonymous.get(url)
        assert response.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert CONTENT_TYPES[suffix] in response.headers["content-type"], url
        vendored = url.removeprefix(f"{STATIC_PATH}/vendor/")
        assert vendored in manifest()["files"], url


async def test_the_oauth2_redirect_page_is_served_without_a_key(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert "https://" not in response.text


async def test_redoc_is_gone_and_a_missing_asset_is_a_plain_404(
    anonymous: httpx.AsyncClient,
) -> None:
    assert (await anonymous.get("/redoc")).status_code == 404
    missing = await anonymous.get(f"{STATIC_PATH}/vendor/swagger-ui/nothing.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_the_vendored_files_are_the_ones_the_manifest_records() -> None:
    recorded = manifest()["files"]
    on_disk = {
        f"{directory.name}/{item.name}"
        for directory in VENDOR.iterdir()
        if directory.is_dir()
        for item in directory.iterdir()
    }
    assert on_disk == set(recorded)
    for path, entry in recorded.items():
        content = VENDOR.joinpath(*path.split("/")).read_bytes()
        assert hashlib.sha256(content).hexdigest() == entry["sha256"], path
        assert len(content) == entry["bytes"], path
        assert entry["package"], path
        assert entry["version"], path


async def test_the_asyncapi_document_is_served_without_a_key(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/asyncapi.yaml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    assert response.text == asyncapi.render()
