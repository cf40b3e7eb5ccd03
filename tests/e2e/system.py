"""The whole of herald as separate processes, for end-to-end tests and the fault suite:
probe stub (recording every request), api, scheduler and senders, on a fresh database.

Its processes are the benchmark's :class:`bench.system.Service`.
"""

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy.engine import make_url

from bench.system import BIN, Service, free_port, wait_until_listening
from herald_common.db import migrate

PROBE_TOKEN = "e2e-probe-token"


@dataclass
class System:
    database_url: str
    amqp_url: str
    log_dir: Path
    env: dict[str, str]
    stub_port: int
    api_port: int
    api_key: str = ""
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.api_port}/api/v1",
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=30,
        )

    @property
    def stub(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.stub_port}", timeout=30)

    def service(
        self, name: str, argv: list[str], extra_env: dict[str, str] | None = None
    ) -> Service:
        service = Service(
            name, argv, {**self.env, **(extra_env or {})}, self.log_dir / f"{name}.log"
        )
        self.services[name] = service
        service.start()
        return service

    @property
    def stub_record_path(self) -> Path:
        return self.log_dir / "stub-record.ndjson"

    def stub_received(self) -> list[dict[str, Any]]:
        """Every request the stub answered, across its restarts (from its --record file)."""
        time.sleep(0.3)  # the stub flushes its record file every 0.2 s
        text = self.stub_record_path.read_bytes() if self.stub_record_path.exists() else b""
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]

    def configure_stub(self, **faults: Any) -> None:
        self.stub.put("/_stub/config", json=faults).raise_for_status()

    def logs(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")


@contextmanager
def running_system(
    *,
    database_server_url: str,
    amqp_url: str,
    log_dir: Path,
    senders: int = 2,
    env: dict[str, str] | None = None,
    stub_args: list[str] | None = None,
    api_port: int | None = None,
) -> Iterator[System]:
    """Start stub, api, scheduler and senders on a fresh database; stop them all after."""
    database_url = (
        make_url(database_server_url)
        .set(database=f"herald_e2e_{uuid.uuid4().hex[:8]}")
        .render_as_string(hide_password=False)
    )
    migrate.create_database_if_missing(database_url)
    migrate.upgrade(database_url)
    log_dir.mkdir(parents=True, exist_ok=True)
    stub_port, api_port = free_port(), api_port or free_port()
    base_env = {
        **os.environ,
        "HERALD_DATABASE_URL": database_url,
        "HERALD_AMQP_URL": amqp_url,
        "HERALD_PROBE_URL": f"http://127.0.0.1:{stub_port}/v1",
        "HERALD_PROBE_TOKEN": PROBE_TOKEN,
        "HERALD_API_PORT": str(api_port),
        "HERALD_LOG_FORMAT": "json",
        "HERALD_SCHEDULER_METRICS_PORT": "0",
        "HERALD_SENDER_METRICS_PORT": "0",
        **(env or {}),
    }
    system = System(database_url, amqp_url, log_dir, base_env, stub_port, api_port)
    with ExitStack() as stack:
        stack.callback(migrate.drop_database, database_url)
        stack.callback(_stop_all, system)
        stub = system.service(
            "probe-stub",
            [
                str(BIN / "herald-probe-stub"),
                "--port",
                str(stub_port),
                "--token",
                PROBE_TOKEN,
                "--record",
                str(log_dir / "stub-record.ndjson"),
                *(stub_args or []),
            ],
        )
        wait_until_listening(stub_port, stub.process)  # type: ignore[arg-type]
        system.api_key = subprocess.run(
            [str(BIN / "herald"), "api-key", "create", "--name", "e2e"],
            env=base_env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        api = system.service("api", [str(BIN / "herald-api")])
        system.service("scheduler", [str(BIN / "herald-scheduler")])
        for index in range(senders):
            system.service(f"sender-{index + 1}", [str(BIN / "herald-sender")])
        wait_until_listening(api_port, api.process)  # type: ignore[arg-type]
        yield system


def _stop_all(system: System) -> None:
    for service in reversed(list(system.services.values())):
        service.stop()
