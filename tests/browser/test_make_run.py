"""What a new user does first: `herald run` (what `make run` starts), then the admin URL
and login it prints, in Chromium. The login reaches the dashboard through the identity
provider's own form, and a mailing created on the page is delivered by the stub while
its counters update."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, expect
from sqlalchemy.engine import make_url

from bench.system import free_port
from herald_common.db import migrate
from tests.conftest import fresh_vhost

pytestmark = pytest.mark.timeout(180)

HERALD = Path(sys.executable).parent / "herald"
# `herald run` binds these itself (the stub, the identity provider, the SMTP sink, the
# reporter's and the senders' metrics); the api's port is the test's choice.
FIXED_PORTS = (8090, 8091, 8025, 9120, 9102, 9103)
CLIENTS = 30


@dataclass(frozen=True)
class Running:
    admin_url: str
    password: str
    api_url: str
    api_key: str


def _taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def herald_run(
    database_server_url: str, amqp_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    taken = [port for port in FIXED_PORTS if _taken(port)]
    if taken:
        reason = f"ports {taken} are taken (is `make run` running?); `herald run` needs them"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    database_url = (
        make_url(database_server_url)
        .set(database=f"herald_run_{uuid.uuid4().hex[:8]}")
        .render_as_string(hide_password=False)
    )
    workdir = tmp_path_factory.mktemp("herald-run")
    output = workdir / "output.log"
    with ExitStack() as stack:
        stack.callback(migrate.drop_database, database_url)
        amqp_url = stack.enter_context(
            fresh_vhost(amqp_server_url, f"herald-run-{uuid.uuid4().hex[:8]}")
        )
        api_port = free_port()
        env = {
            **os.environ,
            "HERALD_DATABASE_URL": database_url,
            "HERALD_AMQP_URL": amqp_url,
            "HERALD_API_PORT": str(api_port),
            "HERALD_LOG_FORMAT": "json",
        }
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [str(HERALD), "run"], env=env, cwd=workdir, stdout=sink, stderr=subprocess.STDOUT
            )
        stack.callback(_stop, process)
        text = _wait_for(output, process, "Press Ctrl-C to stop.")
        admin = re.search(r"Admin UI: (\S+)", text)
        login = re.search(r"Login:\s+admin / (\S+)", text)
        key = re.search(r"API key:\s+(\S+)", text)
        api = re.search(r"API:\s+(\S+)", text)
        if admin is None or login is None or key is None or api is None:
            raise AssertionError(f"herald run did not print its URLs, key and login:\n{text}")
        yield Running(admin.group(1), login.group(1), api.group(1), key.group(1))


def _wait_for(output: Path, process: subprocess.Popen[bytes], marker: str) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = output.read_text(errors="replace")
        if marker in text:
            return text
        if process.poll() is not None:
            raise AssertionError(f"herald run exited with {process.returncode}:\n{text[-3000:]}")
        time.sleep(0.3)
    raise AssertionError(f"herald run printed no {marker!r}:\n{output.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def test_the_printed_login_reaches_the_dashboard_and_a_mailing_gets_sent(
    herald_run: Running, browser: Browser
) -> None:
    csv = "phone,timezone\n" + "".join(f"79{n:09d},Europe/Moscow\n" for n in range(CLIENTS))
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{herald_run.api_url}/clients/import",
            content=csv,
            headers={"Authorization": f"Bearer {herald_run.api_key}", "Content-Type": "text/csv"},
        )
    assert response.status_code == 200, response.text
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()

    await page.goto(herald_run.admin_url)
    await page.fill("input[name=login]", "admin")
    await page.locator("input[name=login]").press("Enter")
    await page.fill("input[name=password]", herald_run.password)
    await page.locator("input[name=password]").press("Enter")
    await expect(page.locator("h1")).to_contain_text("Dashboard")

    await page.goto(f"{herald_run.admin_url}/mailings/new")
    await page.fill("#text", "Hello from make run")
    await page.select_option("#timezone", "UTC")
    await page.fill("#start_local", "2020-01-01T00:00")
    await page.fill("#end_local", "2099-01-01T00:00")
    await expect(page.locator("#audience")).to_contain_text(str(CLIENTS), timeout=10_000)
    await page.get_by_role("button", name="Create mailing").click()

    await expect(page.locator("[data-count=sent]")).to_have_text(str(CLIENTS), timeout=60_000)
    await context.close()
