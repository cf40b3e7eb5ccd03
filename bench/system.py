"""herald as separate processes for one benchmark run: the probe stub, the api, the scheduler
and N senders, on a fresh PostgreSQL database and RabbitMQ vhost that are dropped after.

Unlike the end-to-end harness this one keeps no per-request record file at the stub (its
counters say what the benchmark needs) and exposes every process id, so that CPU and memory
can be read from /proc.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy.engine import make_url

from herald_common.broker.topology import (
    SCHEDULER_EVENTS_QUEUE,
    SEND_COMMANDS_QUEUE,
    STATUS_EVENTS_QUEUE,
)
from herald_common.db import migrate

BIN = Path(sys.executable).parent
PROBE_TOKEN = "bench-probe-token"  # noqa: S105 - the local stub's, not a secret
STOP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_listening(
    port: int, process: subprocess.Popen[bytes], timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port} after {timeout}s")


@dataclass
class Service:
    """One herald process; its output goes to ``<log_dir>/<name>.log``. The benchmark and
    the end-to-end and fault tests run their processes through it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def restart(self) -> None:
        """Start the same command again, as a process supervisor would after a crash."""
        if self.running:
            raise RuntimeError(f"{self.name} is still running")
        self.start()

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        if self.process is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.process:
            self.process.wait()

    def wait_listening(self, port: int, timeout: float = 30.0) -> None:
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        try:
            wait_until_listening(port, self.process, timeout)
        except RuntimeError as error:
            raise RuntimeError(f"{self.name} exited; see {self.log_path}") from error


@dataclass
class System:
    database_url: str
    amqp_url: str
    vhost: str
    log_dir: Path
    stub_port: int
    api_port: int
    api_key: str = ""
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def database_name(self) -> str:
        return make_url(self.database_url).database or ""

    @property
    def libpq_url(self) -> str:
        """The database URL as psycopg takes it (no SQLAlchemy driver suffix)."""
        return (
            make_url(self.database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )

    def api_client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.api_port}/api/v1",
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=timeout,
        )

    def stub_client(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.stub_port}", timeout=30)

    @property
    def herald_services(self) -> dict[str, Service]:
        """herald's own processes: everything but the stand-in of the external API."""
        return {name: s for name, s in self.services.items() if name != "probe-stub"}


@dataclass(frozen=True)
class SystemOptions:
    senders: int = 2
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    stub_args: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    # Experiments with how herald is run, not with its code: the scheduler and senders on
    # uvloop, and the senders at a lower CPU priority than the api.
    uvloop: bool = False
    sender_nice: int = 0


def _command(script: str, module: str, *, uvloop: bool, nice: int = 0) -> list[str]:
    """The service's console script, or the same entry point with uvloop's event loop."""
    argv = [str(BIN / script)]
    if uvloop:
        argv = [
            sys.executable,
            "-c",
            "import asyncio, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
            f"from {module} import main; main()",
        ]
    return ["nice", "-n", str(nice), *argv] if nice else argv


@contextmanager
def fresh_vhost(server_url: str) -> Iterator[tuple[str, str]]:
    """A vhost of this run's own (through rabbitmqctl), deleted after: (amqp url, vhost)."""
    rabbitmqctl = shutil.which("rabbitmqctl")
    parts = urlsplit(server_url)
    if rabbitmqctl is None or parts.hostname not in ("127.0.0.1", "localhost"):
        raise RuntimeError("the benchmark needs a local RabbitMQ and rabbitmqctl on PATH")
    name = f"herald-bench-{uuid.uuid4().hex[:8]}"
    user = parts.username or "guest"
    subprocess.run([rabbitmqctl, "-q", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(
        [rabbitmqctl, "-q", "set_permissions", "-p", name, user, ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    try:
        yield urlunsplit(parts._replace(path=f"/{name}")), name
    finally:
        subprocess.run([rabbitmqctl, "-q", "delete_vhost", name], check=False, capture_output=True)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    database_url = (
        make_url(server_url)
        .set(database=f"herald_bench_{uuid.uuid4().hex[:8]}")
        .render_as_string(hide_password=False)
    )
    migrate.create_database_if_missing(database_url)
    try:
        migrate.upgrade(database_url)
        yield database_url
    finally:
        migrate.drop_database(database_url)


def _queue_column(vhost: str, column: str) -> dict[str, int]:
    rabbitmqctl = shutil.which("rabbitmqctl") or "rabbitmqctl"
    result = subprocess.run(
        [rabbitmqctl, "-q", "list_queues", "-p", vhost, "--no-table-headers", "name", column],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    values = {}
    for line in result.stdout.splitlines():
        name, _, count = line.rpartition("\t")
        if name and count.isdigit():
            values[name] = int(count)
    return values


def queue_depths(vhost: str) -> dict[str, int]:
    """Messages (ready and unacked) in each queue of the vhost."""
    return _queue_column(vhost, "messages")


def wait_consumers(
    vhost: str, expected: dict[str, int], services: Sequence[Service], timeout: float = 60.0
) -> None:
    """Until each queue has at least its expected number of consumers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for service in services:
            if not service.running:
                raise RuntimeError(f"{service.name} exited; see {service.log_path}")
        consumers = _queue_column(vhost, "consumers")
        if all(consumers.get(queue, 0) >= n for queue, n in expected.items()):
            return
        time.sleep(0.3)
    raise TimeoutError(f"herald's consumers did not all start within {timeout}s")


@contextmanager
def running_system(
    *,
    database_server_url: str,
    amqp_server_url: str,
    log_dir: Path,
    options: SystemOptions,
) -> Iterator[System]:
    """Start the stub and herald on a fresh database and vhost; stop and drop them all after."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        database_url = stack.enter_context(fresh_database(database_server_url))
        amqp_url, vhost = stack.enter_context(fresh_vhost(amqp_server_url))
        system = System(database_url, amqp_url, vhost, log_dir, free_port(), free_port())
        stack.callback(_stop_all, system)
        env = {
            **os.environ,
            "HERALD_DATABASE_URL": database_url,
            "HERALD_AMQP_URL": amqp_url,
            "HERALD_PROBE_URL": f"http://127.0.0.1:{system.stub_port}/v1",
            "HERALD_PROBE_TOKEN": PROBE_TOKEN,
            "HERALD_API_PORT": str(system.api_port),
            "HERALD_LOG_FORMAT": "json",
            "HERALD_SCHEDULER_METRICS_PORT": "0",
            "HERALD_SENDER_METRICS_PORT": "0",
            **options.env,
        }
        stub = _start(
            system,
            "probe-stub",
            [
                str(BIN / "herald-probe-stub"),
                "--port",
                str(system.stub_port),
                "--token",
                PROBE_TOKEN,
                "--latency-ms",
                str(options.latency_ms),
                "--jitter-ms",
                str(options.jitter_ms),
                *options.stub_args,
            ],
            env,
        )
        api = _start(system, "api", [str(BIN / "herald-api")], env)
        scheduler = _start(
            system,
            "scheduler",
            _command("herald-scheduler", "herald_scheduler.main", uvloop=options.uvloop),
            env,
        )
        sender_argv = _command(
            "herald-sender", "herald_sender.main", uvloop=options.uvloop, nice=options.sender_nice
        )
        senders = [
            _start(system, f"sender-{n}", sender_argv, env) for n in range(1, options.senders + 1)
        ]
        # Created while the services start: it only needs the database.
        key = subprocess.run(
            [str(BIN / "herald"), "api-key", "create", "--name", "bench"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        system.api_key = key.stdout.strip()
        stub.wait_listening(system.stub_port)
        api.wait_listening(system.api_port)
        # Ready when consuming (read from the broker, whatever the services' log level).
        expected = {SCHEDULER_EVENTS_QUEUE: 1, STATUS_EVENTS_QUEUE: 1}
        if senders:
            expected[SEND_COMMANDS_QUEUE] = len(senders)
        wait_consumers(vhost, expected, [scheduler, *senders])
        yield system


def _start(system: System, name: str, argv: list[str], env: dict[str, str]) -> Service:
    service = Service(name, argv, env, system.log_dir / f"{name}.log")
    system.services[name] = service
    service.start()
    return service


def _stop_all(system: System) -> None:
    for service in reversed(list(system.services.values())):
        service.stop()
