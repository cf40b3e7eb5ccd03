"""``python -m herald_api.admin.dev_idp``: the provider ``herald run`` starts, and its
printed settings log an admin in."""

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI

from herald_api.admin.dev_idp import ADMIN_GROUP, DEFAULT_REDIRECT_URI, Login
from herald_common.settings import HeraldSettings
from tests.integration.api.conftest import api_settings
from tests.oidc import Browser, install_login, log_in

LOCAL_URL = "http://127.0.0.1:8000"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Started:
    """What the command printed."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.env = dict(
            line.strip().split("=", 1) for line in lines if line.strip().startswith("HERALD_")
        )

    def login(self, label: str) -> tuple[str, str]:
        line = next(line for line in self.lines if line.strip().startswith(label))
        username, _, password = line.split(":", 1)[1].split("(")[0].strip().partition(" / ")
        return username, password


@pytest.fixture(scope="module")
def dev_idp() -> Iterator[Started]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "herald_api.admin.dev_idp", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        while not any("HERALD_ADMIN_COOKIE_SECURE" in line for line in lines):
            line = process.stdout.readline()
            assert line, f"dev_idp exited: {lines}"
            lines.append(line.rstrip("\n"))
        yield Started(lines)
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_it_prints_the_logins_and_serves_a_real_discovery_document(
    dev_idp: Started,
) -> None:
    issuer = dev_idp.env["HERALD_ADMIN_OIDC_ISSUER"]
    async with httpx.AsyncClient() as client:
        discovery = (await client.get(f"{issuer}/.well-known/openid-configuration")).json()
        keys = (await client.get(discovery["jwks_uri"])).json()["keys"]

    assert issuer.startswith("http://127.0.0.1:")
    assert discovery["issuer"] == issuer
    assert "S256" in discovery["code_challenge_methods_supported"]
    assert "RS256" in discovery["id_token_signing_alg_values_supported"]
    assert discovery["end_session_endpoint"] == f"{issuer}/oauth/end_session"
    assert [key["kty"] for key in keys] == ["RSA"]
    assert dev_idp.env["HERALD_ADMIN_OIDC_CLIENT_ID"] == "herald"
    assert dev_idp.env["HERALD_ADMIN_OIDC_ADMIN_VALUES"] == ADMIN_GROUP
    assert dev_idp.env["HERALD_ADMIN_COOKIE_SECURE"] == "false"
    assert len(dev_idp.env["HERALD_ADMIN_SESSION_SECRET"]) >= 32
    assert any(DEFAULT_REDIRECT_URI in line for line in dev_idp.lines)
    assert dev_idp.login("admin login")[0] == "admin"
    assert dev_idp.login("non-admin login")[0] == "user"


async def test_its_printed_settings_log_the_admin_in_over_plain_http(
    dev_idp: Started, settings: HeraldSettings, browser_factory: Callable[..., Browser]
) -> None:
    # Exactly what it printed: that is enough for the api.
    local = api_settings(
        settings,
        **{name.removeprefix("HERALD_").lower(): value for name, value in dev_idp.env.items()},
    )
    app = FastAPI()
    install_login(app, local)
    browser = browser_factory(app, LOCAL_URL)
    username, password = dev_idp.login("admin login")
    admin = Login(username=username, password=password, email="", name="", groups=())

    _, chain = await log_in(browser, admin)

    [callback] = [r for r in chain if r.url.path == "/admin/callback"]
    assert callback.status_code == 303, callback.text
    assert callback.headers["location"] == "/admin"
    set_cookie = callback.headers["set-cookie"]
    assert set_cookie.startswith("herald_admin=")
    assert "Secure" not in set_cookie
    assert browser.session_cookie() is not None
