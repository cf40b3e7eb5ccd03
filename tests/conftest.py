"""Shared fixtures: a fresh PostgreSQL database and RabbitMQ vhost for each test run.

Tests use the running services named by ``HERALD_TEST_DATABASE_URL`` and
``HERALD_TEST_AMQP_URL`` (default: 127.0.0.1). When those are unreachable and a
Docker engine exists, testcontainers starts them instead.
"""

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_common.db import migrate
from herald_common.db.engine import create_engine, create_sessionmaker
from herald_common.settings import HeraldSettings

BASE_DATABASE_URL = os.environ.get(
    "HERALD_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
BASE_AMQP_URL = os.environ.get("HERALD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
RUN_ID = uuid.uuid4().hex[:8]

# The admin login's OpenID provider (Canaille) and a browser for it, for any test.
pytest_plugins = ["tests.oidc"]

LEDGER_TABLES = (
    "messages, mailing_counters, outbox, mailings, clients, client_changes, api_keys, rate_limits,"
    " idempotency_keys"
)


def _reachable(host: str | None, port: int | None) -> bool:
    try:
        with socket.create_connection((host or "127.0.0.1", port or 0), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def database_server_url() -> Iterator[str]:
    url = make_url(BASE_DATABASE_URL)
    if _reachable(url.host, url.port or 5432):
        yield BASE_DATABASE_URL
        return
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16", driver="psycopg") as container:
        yield container.get_connection_url()


@pytest.fixture(scope="session")
def database_url(database_server_url: str) -> Iterator[str]:
    url = make_url(database_server_url).set(database=f"herald_test_{RUN_ID}")
    rendered = url.render_as_string(hide_password=False)
    migrate.create_database_if_missing(rendered)
    migrate.upgrade(rendered)
    yield rendered
    migrate.drop_database(rendered)


@pytest.fixture(scope="session")
def amqp_server_url() -> Iterator[str]:
    parts = urlsplit(BASE_AMQP_URL)
    if _reachable(parts.hostname, parts.port or 5672):
        yield BASE_AMQP_URL
        return
    from testcontainers.rabbitmq import RabbitMqContainer

    with RabbitMqContainer("rabbitmq:3.13") as container:
        params = container.get_connection_params()
        yield f"amqp://guest:guest@{params.host}:{params.port}/"


def _rabbitmqctl(rabbitmqctl: str, *args: str, attempts: int = 3) -> None:
    """rabbitmqctl, tried again on a failure: its CLI node occasionally fails to start
    under load (seen once in a full run)."""
    for attempt in range(1, attempts + 1):
        result = subprocess.run([rabbitmqctl, "-q", *args], capture_output=True, text=True)
        # A retried add_vhost may find the vhost its failed first try created.
        if result.returncode == 0 or "already_exists" in result.stderr:
            return
        if attempt == attempts:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip()}")
        time.sleep(1)


@contextmanager
def fresh_vhost(server_url: str, name: str) -> Iterator[str]:
    """A vhost of its own, so that leftovers of other runs never interfere.

    Needs rabbitmqctl on this machine; elsewhere the server's own URL is used as is.
    """
    parts = urlsplit(server_url)
    rabbitmqctl = shutil.which("rabbitmqctl")
    if rabbitmqctl is None or parts.hostname not in ("127.0.0.1", "localhost"):
        yield server_url
        return
    user = parts.username or "guest"
    _rabbitmqctl(rabbitmqctl, "add_vhost", name)
    _rabbitmqctl(rabbitmqctl, "set_permissions", "-p", name, user, ".*", ".*", ".*")
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        subprocess.run([rabbitmqctl, "-q", "delete_vhost", name], check=False, capture_output=True)


@pytest.fixture(scope="session")
def amqp_url(amqp_server_url: str) -> Iterator[str]:
    with fresh_vhost(amqp_server_url, f"herald-test-{RUN_ID}") as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, amqp_url: str) -> HeraldSettings:
    return HeraldSettings(database_url=database_url, amqp_url=amqp_url, log_format="json")


@pytest.fixture(scope="session")
async def engine(settings: HeraldSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
async def clean_db(engine: AsyncEngine) -> AsyncEngine:
    """Empty every table before the test, so that each test starts from nothing."""
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {LEDGER_TABLES} RESTART IDENTITY CASCADE"))
    return engine
