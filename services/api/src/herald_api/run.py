"""``herald run``: the whole system on one machine, in the foreground, for development.

Checks that PostgreSQL and RabbitMQ answer, migrates, creates a development API key,
then starts the probe stub (unless HERALD_PROBE_URL points elsewhere), a local OpenID
provider for the admin UI (unless HERALD_ADMIN_OIDC_ISSUER names one), the api, the
scheduler, two senders, the reporter and a local SMTP sink for its mail. Ctrl-C stops
them all cleanly. With a local RabbitMQ it prints the management UI's address, or how to
turn the UI on (and turns it on itself only when HERALD_RUN_ENABLE_RABBITMQ_UI says so).
"""

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aio_pika
import httpx
import psycopg
from pydantic import Field
from sqlalchemy.engine import make_url

from herald_api.settings import ApiSettings
from herald_common.db import migrate
from herald_common.settings import ProbeSettings

STUB_URL = "http://127.0.0.1:8090/v1"
MAIL_DIR = "var/mail"
SHUTDOWN_GRACE_SECONDS = 10.0
RABBITMQ_UI = "http://127.0.0.1:15672"
ENABLE_RABBITMQ_UI = "rabbitmq-plugins enable rabbitmq_management"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class RunSettings(ApiSettings, ProbeSettings):
    run_senders: int = Field(
        default=2, ge=1, le=16, description="Sender processes that `herald run` starts."
    )
    run_identity_provider_port: int = Field(
        default=8091,
        ge=1,
        le=65535,
        description="Port of the local OpenID provider `herald run` starts for the admin UI"
        " (when HERALD_ADMIN_OIDC_ISSUER is not set).",
    )
    run_enable_rabbitmq_ui: bool = Field(
        default=False,
        description="Let `herald run` turn on a local RabbitMQ's management UI when it is off"
        f" (`{ENABLE_RABBITMQ_UI}`): a change to the broker, for everyone who uses it.",
    )


class Unreachable(Exception):
    """A dependency does not answer; the message says which and how to start it."""


@dataclass(frozen=True)
class DevLogin:
    """The local identity provider's seeded accounts and herald's client, for this run."""

    admin_password: str
    user_password: str
    client_secret: str
    session_secret: str


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None


def check_postgresql(database_url: str) -> None:
    url = make_url(database_url)
    try:
        psycopg.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password or None,
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise Unreachable(
            f"PostgreSQL is not reachable at {url.host}:{url.port or 5432} ({reason}).\n"
            "  Start it with: pg_ctlcluster --skip-systemctl-redirect "
            "$(ls /etc/postgresql) main start\n"
            "  or point HERALD_DATABASE_URL at a running server."
        ) from None


def check_rabbitmq(amqp_url: str) -> None:
    parts = urlsplit(amqp_url)

    async def probe() -> None:
        connection = await aio_pika.connect(amqp_url, timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as error:
        raise Unreachable(
            f"RabbitMQ is not reachable at {parts.hostname}:{parts.port or 5672} "
            f"({type(error).__name__}).\n"
            "  Start it with: rabbitmq-server -detached\n"
            "  or point HERALD_AMQP_URL at a running broker."
        ) from None


def rabbitmq_ui_line(amqp_url: str, *, answering: bool, enable_failed: str | None = None) -> str:
    """What ``herald run`` prints about RabbitMQ's management UI, next to the API's URL
    (one or two lines, the first after the API's indent).

    Only a local broker's UI is known to be at 127.0.0.1:15672. The login is printed only
    when it is RabbitMQ's default (guest, which RabbitMQ lets log in from localhost only):
    any other password stays where it is, in HERALD_AMQP_URL.
    """
    parts = urlsplit(amqp_url)
    if parts.hostname not in LOCAL_HOSTS:
        where = f"{parts.hostname}:{parts.port or 5672}"
        return f"RabbitMQ: {where} (not local: its management UI was not looked for)"
    if not answering:
        why = f"could not be turned on: {enable_failed}" if enable_failed else "is off"
        hint = "" if enable_failed else " (or set HERALD_RUN_ENABLE_RABBITMQ_UI=true)"
        return (
            f"RabbitMQ: its management UI {why}\n"
            f"            turn it on with `{ENABLE_RABBITMQ_UI}`{hint}"
        )
    user, password = unquote(parts.username or "guest"), unquote(parts.password or "guest")
    login = "guest/guest" if (user, password) == ("guest", "guest") else f"user {user}"
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return f"RabbitMQ: {RABBITMQ_UI} ({login}{'' if vhost == '/' else f', vhost {vhost}'})"


def rabbitmq_ui_answers(timeout: float = 1.0) -> bool:
    try:
        # Any answer of the management API, "not authorised" included, means it is on.
        response = httpx.get(f"{RABBITMQ_UI}/api/overview", timeout=timeout)
    except httpx.HTTPError:
        return False
    return response.status_code in (200, 401)


def enable_rabbitmq_ui(wait: float = 30.0) -> str | None:
    """Turn the local broker's management plugin on; None once it answers, else why not."""
    plugins = shutil.which("rabbitmq-plugins")
    if plugins is None:
        return "rabbitmq-plugins is not on this machine"
    try:
        # An absolute path from PATH and fixed arguments: no shell, no user input.
        result = subprocess.run(  # noqa: S603
            [plugins, "enable", "rabbitmq_management"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "rabbitmq-plugins did not finish within 120 s"
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        return lines[-1] if lines else f"rabbitmq-plugins exited with {result.returncode}"
    # The plugin starts its listener a moment after the command returns.
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if rabbitmq_ui_answers():
            return None
        time.sleep(0.5)
    return f"enabled, but nothing answers at {RABBITMQ_UI} after {wait:g} s"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def command(name: str) -> str:
    """A console script of this environment (the one ``herald`` itself runs from)."""
    return str(Path(sys.executable).parent / name)


def create_dev_key() -> str:
    # Our own console script, by absolute path; no shell, no user input in argv.
    result = subprocess.run(  # noqa: S603
        [command("herald"), "api-key", "create", "--name", "dev (herald run)"],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def identity_provider(settings: RunSettings, login: DevLogin) -> tuple[Child, dict[str, str]]:
    """The development OpenID provider (Canaille), and the api's environment for it."""
    port = settings.run_identity_provider_port
    issuer = f"http://127.0.0.1:{port}"
    callback = f"http://{settings.api_host}:{settings.api_port}/admin/callback"
    child = Child(
        "identity-provider",
        [
            sys.executable,
            "-m",
            "herald_api.admin.dev_idp",
            "--port",
            str(port),
            "--redirect-uri",
            callback,
            # name=value: a random secret may start with "-".
            f"--client-secret={login.client_secret}",
            f"--admin-password={login.admin_password}",
            f"--user-password={login.user_password}",
        ],
    )
    api_env = {
        "HERALD_ADMIN_OIDC_ISSUER": issuer,
        "HERALD_ADMIN_OIDC_CLIENT_ID": "herald",
        "HERALD_ADMIN_OIDC_CLIENT_SECRET": login.client_secret,
        "HERALD_ADMIN_SESSION_SECRET": login.session_secret,
        # Plain http on this machine: a Secure cookie would never be sent back.
        "HERALD_ADMIN_COOKIE_SECURE": "false",
    }
    return child, api_env


def plan(settings: RunSettings, login: DevLogin | None = None) -> list[Child]:
    """The processes to start; ``login`` adds the local identity provider."""
    children: list[Child] = []
    api_env: dict[str, str] = {}
    if login is not None:
        provider, api_env = identity_provider(settings, login)
        children.append(provider)
    if settings.probe_url.rstrip("/") == STUB_URL:
        stub = urlsplit(STUB_URL)
        children.append(
            Child(
                "probe-stub",
                [
                    command("herald-probe-stub"),
                    "--port",
                    str(stub.port),
                    "--token",
                    settings.probe_token.get_secret_value(),
                ],
            )
        )
    children.append(Child("api", [command("herald-api")], env=api_env))
    children.append(Child("scheduler", [command("herald-scheduler")]))
    # The daily report goes to a local SMTP sink, which keeps each mail as a file.
    children.append(
        Child(
            "mail-sink",
            [
                command("herald-mail-sink"),
                "--host",
                "127.0.0.1",
                "--port",
                "8025",
                "--dir",
                MAIL_DIR,
            ],
        )
    )
    children.append(
        Child(
            "reporter",
            [command("herald-reporter"), "run"],
            env={
                "HERALD_REPORT_RECIPIENTS": "ops@localhost",
                "HERALD_SMTP_HOST": "127.0.0.1",
                "HERALD_SMTP_PORT": "8025",
                "HERALD_SMTP_TLS": "none",
                "HERALD_ADMIN_URL": f"http://{settings.api_host}:{settings.api_port}/admin",
            },
        )
    )
    for index in range(settings.run_senders):
        children.append(
            Child(
                f"sender-{index + 1}",
                [command("herald-sender")],
                env={"HERALD_SENDER_METRICS_PORT": str(9102 + index)},
            )
        )
    return children


def start(children: list[Child]) -> None:
    for child in children:
        # Children get their own process group so that Ctrl-C reaches only us and we
        # stop them in order, each with SIGTERM and a grace period.
        child.process = subprocess.Popen(  # noqa: S603 - our own console scripts
            child.argv, env={**os.environ, **child.env}, start_new_session=True
        )


def stop(children: list[Child]) -> None:
    running = [c for c in children if c.process and c.process.poll() is None]
    for child in running:
        assert child.process
        child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
    for child in running:
        assert child.process
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"herald: {child.name} did not stop in time; killing it", file=sys.stderr)
            child.process.kill()
            child.process.wait()


def wait_for_api(host: str, port: int, children: list[Child], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_in_use(host, port):
            return True
        if any(c.process and c.process.poll() is not None for c in children):
            return False
        time.sleep(0.2)
    return False


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser(
        "run", help="start api, scheduler, senders and the probe stub in the foreground"
    )
    parser.set_defaults(handler=lambda _args, _settings: run(RunSettings()))


def rabbitmq_ui(settings: RunSettings) -> str:
    """The line about the management UI, turning the UI on first if the settings allow."""
    local = urlsplit(settings.amqp_url).hostname in LOCAL_HOSTS
    answering = local and rabbitmq_ui_answers()
    failed = None
    if local and not answering and settings.run_enable_rabbitmq_ui:
        print(f"herald: turning on RabbitMQ's management UI: {ENABLE_RABBITMQ_UI}", file=sys.stderr)
        failed = enable_rabbitmq_ui()
        answering = failed is None
    return rabbitmq_ui_line(settings.amqp_url, answering=answering, enable_failed=failed)


def run(settings: RunSettings) -> int:
    try:
        check_postgresql(settings.database_url)
        check_rabbitmq(settings.amqp_url)
    except Unreachable as error:
        print(f"herald: {error}", file=sys.stderr)
        return 2
    if port_in_use(settings.api_host, settings.api_port):
        print(
            f"herald: port {settings.api_port} on {settings.api_host} is taken; "
            "stop what uses it or set HERALD_API_PORT.",
            file=sys.stderr,
        )
        return 2
    broker_ui = rabbitmq_ui(settings)
    migrate.create_database_if_missing(settings.database_url)
    migrate.upgrade(settings.database_url)
    key = create_dev_key()
    # The admin UI logs in through OpenID Connect: without an issuer of the user's own,
    # a local provider with fresh passwords for this run.
    login = None
    if settings.admin_oidc_issuer is None:
        login = DevLogin(
            admin_password=secrets.token_urlsafe(12),
            user_password=secrets.token_urlsafe(12),
            client_secret=secrets.token_urlsafe(24),
            session_secret=secrets.token_urlsafe(32),
        )

    children = plan(settings, login)
    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    start(children)
    try:
        if not wait_for_api(settings.api_host, settings.api_port, children):
            print("herald: the api did not start; see the logs above", file=sys.stderr)
            return 1
        base = f"http://{settings.api_host}:{settings.api_port}"
        if login is not None:
            admin = (
                f"  Admin UI: {base}/admin\n"
                f"  Login:    admin / {login.admin_password}"
                f"   (not an admin: user / {login.user_password})\n"
            )
        else:
            admin = f"  Admin UI: {base}/admin (log in through {settings.admin_oidc_issuer})\n"
        print(
            f"\nherald is running ({', '.join(c.name for c in children)})\n"
            f"  API:      {base}/api/v1\n"
            f"  Docs:     {base}/docs\n"
            f"  {broker_ui}\n"
            f"  API key:  {key}\n"
            f"{admin}"
            f"  Mail:     the daily report lands in {Path(MAIL_DIR).resolve()}/ (local SMTP sink)\n"
            f"  Try:      curl -H 'Authorization: Bearer {key}' {base}/api/v1/mailings\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not stopping:
            exited = [c for c in children if c.process and c.process.poll() is not None]
            if exited:
                names = ", ".join(
                    f"{c.name} (exit {c.process.returncode})" for c in exited if c.process
                )
                print(f"herald: {names} stopped unexpectedly; stopping the rest", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        print("herald: stopping...", file=sys.stderr, flush=True)
        stop(children)
