"""Each herald service of deploy/compose.yaml, started here with its compose command and
environment, becomes healthy by its own compose healthcheck and stops on SIGTERM in 10 s.

Compose host names become loopback: PostgreSQL and RabbitMQ are this machine's (a fresh
database and vhost, with the test server's credentials in place of the compose ones),
the probe stub is started like the compose one. Every *_PORT gets a free port, and
0.0.0.0 becomes 127.0.0.2, which proves the service binds where it is told while the
test stays on loopback.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from herald_common.db import migrate
from tests.conftest import RUN_ID, fresh_vhost
from tests.deploy.compose_file import service_command, service_environment

BIN = Path(sys.executable).parent
BIND_HOST = "127.0.0.2"
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - what compose binds; replaced by BIND_HOST
READY_WITHIN = 60.0
STOP_WITHIN = 10.0
LONG_RUNNING = ("probe-stub", "api", "scheduler", "sender", "reporter")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((BIND_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Stack:
    """Where the compose names point on this machine."""

    database_url: str
    amqp_url: str
    directory: Path
    stub_port: int | None = None

    def environment(self, service: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
        """The process environment for a compose service, and its remapped ports."""
        compose = service_environment(service)
        ports: dict[str, str] = {}
        herald: dict[str, str] = {}
        for name, value in compose.items():
            if name == "HERALD_DATABASE_URL":
                value = self.database_url
            elif name == "HERALD_AMQP_URL":
                value = self.amqp_url
            elif name.endswith("_PORT"):
                ports[value] = value = str(free_port())
            elif value == EVERY_INTERFACE:
                value = BIND_HOST
            elif value.startswith("http://probe-stub:"):
                assert self.stub_port, "the probe stub starts first"
                url = urlsplit(value)
                value = urlunsplit(url._replace(netloc=f"127.0.0.1:{self.stub_port}"))
            herald[name] = value
        # Nothing of the test's own environment leaks in (HERALD_TEST_*, a developer's .env).
        base = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        return {**base, **herald}, ports


@dataclass
class Running:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    healthcheck: list[str]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def healthy(self) -> bool:
        check = subprocess.run(self.healthcheck, capture_output=True, timeout=10, check=False)
        return check.returncode == 0

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + READY_WITHIN
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")
            if self.healthy():
                return
            time.sleep(0.25)
        pytest.fail(f"{self.name} not healthy after {READY_WITHIN}s:\n{self.output()}")

    def terminate(self) -> int:
        """SIGTERM, then its exit code; fails if it takes longer than a container may."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"{self.name} still running {STOP_WITHIN}s after SIGTERM:\n{self.output()}")


def _healthcheck(service: dict[str, Any], ports: dict[str, str]) -> list[str]:
    """The compose healthcheck, run here: our python, the remapped host and port."""
    kind, *argv = service["healthcheck"]["test"]
    assert kind == "CMD"
    assert argv[0] == "python", "app healthchecks use the image's python, nothing else"
    command = [sys.executable, *argv[1:]]
    for compose_port, local_port in ports.items():
        command = [
            part.replace(f"127.0.0.1:{compose_port}/", f"{BIND_HOST}:{local_port}/")
            for part in command
        ]
    assert command != [sys.executable, *argv[1:]], "the healthcheck targets the service's port"
    return command


def stopped_cleanly(status: int, output: str) -> bool:
    """Exit 0, or uvicorn's way: it re-raises SIGTERM once its graceful shutdown is done.

    A process without a SIGTERM handler also ends with -SIGTERM, abruptly: the last line
    it logged tells the two apart.
    """
    if status == 0:
        return True
    lines = [line for line in output.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    finished = "Finished server process" in last or (
        last.startswith("{") and str(json.loads(last).get("event", "")).endswith(".stopped")
    )
    return status == -signal.SIGTERM and finished


@pytest.fixture(scope="module")
def stack(
    database_server_url: str, amqp_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    database_url = (
        make_url(database_server_url)
        .set(database=f"herald_deploy_{RUN_ID}")
        .render_as_string(hide_password=False)
    )
    migrate.drop_database(database_url)
    try:
        with fresh_vhost(amqp_server_url, f"herald-deploy-{RUN_ID}") as amqp_url:
            yield Stack(database_url, amqp_url, tmp_path_factory.mktemp("compose"))
    finally:
        migrate.drop_database(database_url)


@pytest.fixture(scope="module")
def migrated(services: dict[str, Any], stack: Stack) -> subprocess.CompletedProcess[str]:
    """The compose `migrate` service, run to completion against a database not yet made."""
    service = services["migrate"]
    script, *arguments = service_command(service)
    environment, _ = stack.environment(service)
    return subprocess.run(
        [str(BIN / script), *arguments],
        env=environment,
        cwd=stack.directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def start(name: str, services: dict[str, Any], stack: Stack) -> Running:
    service = services[name]
    script, *arguments = service_command(service)
    environment, ports = stack.environment(service)
    log = stack.directory / f"{name}-{time.monotonic_ns()}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(BIN / script), *arguments],
            env=environment,
            cwd=stack.directory,  # no .env of the checkout is read
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if name == "probe-stub":
        stack.stub_port = int(next(iter(ports.values())))
    return Running(name, process, log, _healthcheck(service, ports))


def test_migrate_creates_the_schema_and_exits(
    migrated: subprocess.CompletedProcess[str], stack: Stack
) -> None:
    assert migrated.returncode == 0, migrated.stderr
    engine = create_engine(make_url(stack.database_url))
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert {"alembic_version", "clients", "mailings", "messages", "outbox"} <= tables


@pytest.mark.timeout(150)
@pytest.mark.parametrize("name", LONG_RUNNING)
def test_service_becomes_healthy_and_stops_on_sigterm(
    name: str,
    services: dict[str, Any],
    stack: Stack,
    migrated: subprocess.CompletedProcess[str],
) -> None:
    assert migrated.returncode == 0, "the services start after a successful migration"
    dependencies = [
        dependency
        for dependency in services[name].get("depends_on", {})
        if dependency in LONG_RUNNING
    ]
    started: list[Running] = []
    try:
        for dependency in dependencies:
            started.append(start(dependency, services, stack))
            started[-1].wait_until_healthy()
        service = start(name, services, stack)
        started.append(service)
        service.wait_until_healthy()
        time.sleep(1)  # still up a moment later, not dying after its first answer
        assert service.process.poll() is None, service.output()

        assert stopped_cleanly(service.terminate(), service.output()), service.output()
        if name != "probe-stub":  # the stub logs through uvicorn, not structlog
            events = [
                json.loads(line) for line in service.output().splitlines() if line.startswith("{")
            ]
            assert events, "HERALD_LOG_FORMAT=json gives JSON lines"
            assert all("event" in event for event in events)
    finally:
        for running in reversed(started):
            if running.process.poll() is None:
                running.terminate()
