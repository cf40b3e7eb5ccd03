"""Faults against the real system as separate processes: kills, broker and database
restarts, an outage and hangs of the external API. After each, every matching client
ends in exactly one final status, nothing is sent twice (except what was in flight at
the fault), late or outside its window, counters equal the ledger, and the services
recovered by themselves."""

import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from herald_common.send_window import SendWindow, is_inside, zone
from tests.e2e import ledger
from tests.e2e.conftest import StartSystem
from tests.e2e.system import System
from tests.e2e.test_dispatch import (
    create_mailing,
    import_clients,
    iso,
    phone,
    wait_all_final,
    wait_for,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

CLIENTS = 3000
ZONES = ("Europe/Moscow", "Asia/Vladivostok", "Europe/Kaliningrad")
# Slow enough that the mailing is still going when the fault strikes.
STUB_ARGS = ["--latency-ms", "150", "--jitter-ms", "50"]
SENDER_ENV = {"HERALD_SENDER_CONCURRENCY": "30", "HERALD_SENDER_REQUEST_TIMEOUT": "5"}
# A success answered this close to a fault may be sent again: its command was in flight.
IN_FLIGHT_SLACK = timedelta(seconds=15)


@dataclass
class FaultWindow:
    started: datetime
    ended: datetime


def run_postgres(action: str) -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
    )


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def kill_and_restart(system: System, name: str) -> None:
    service = system.services[name]
    service.kill()
    time.sleep(1)
    service.restart()


def wait_sending(system: System, at_least: int = 200) -> None:
    wait_for(lambda: len(system.stub_received()) >= at_least, 60, f"{at_least} sends")


def fault_kill_sender(system: System, mailing: Callable[[], int]) -> None:
    mailing()
    wait_sending(system)
    kill_and_restart(system, "sender-1")


def fault_kill_scheduler_materialising(system: System, mailing: Callable[[], int]) -> None:
    mailing_id = mailing()

    def materialising() -> bool:
        count = sum(ledger.statuses(system.database_url, mailing_id).values())
        return 0 < count < CLIENTS

    deadline = time.monotonic() + 30
    while not materialising() and time.monotonic() < deadline:
        time.sleep(0.002)
    kill_and_restart(system, "scheduler")


def fault_kill_scheduler_dispatching(system: System, mailing: Callable[[], int]) -> None:
    mailing()
    wait_sending(system)
    kill_and_restart(system, "scheduler")


def fault_restart_rabbitmq(system: System, mailing: Callable[[], int]) -> None:
    mailing()
    wait_sending(system)
    rabbitmqctl("stop_app")
    time.sleep(5)
    rabbitmqctl("start_app")


def fault_restart_postgresql(system: System, mailing: Callable[[], int]) -> None:
    mailing()
    wait_sending(system)
    run_postgres("stop")
    time.sleep(5)
    run_postgres("start")


def fault_stub_down(system: System, mailing: Callable[[], int]) -> None:
    mailing()
    wait_sending(system)
    stub = system.services["probe-stub"]
    stub.stop()
    time.sleep(30)
    stub.restart()


def fault_stub_hangs(system: System, mailing: Callable[[], int]) -> None:
    mailing()
    wait_sending(system)
    system.configure_stub(hang_rate=1.0, hang_seconds=10)
    time.sleep(12)
    system.configure_stub(hang_rate=0.0)


def fault_cut_database_connections_dispatching(system: System, mailing: Callable[[], int]) -> None:
    """Every connection to herald's database cut, again and again for 3 s: dispatch
    transactions fail wherever they are, their commits included."""
    mailing()
    wait_sending(system)
    database = make_url(system.database_url)
    deadline = time.monotonic() + 3
    with psycopg.connect(
        database.set(drivername="postgresql").render_as_string(hide_password=False),
        autocommit=True,
    ) as connection:
        while time.monotonic() < deadline:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (database.database,),
            )
            time.sleep(0.2)


def fault_purge_send_queue(system: System, mailing: Callable[[], int]) -> None:
    """The send commands in RabbitMQ are lost: their rows are dispatched again once their
    leases run out."""
    mailing()
    wait_sending(system)
    vhost = unquote(urlsplit(system.amqp_url).path.lstrip("/")) or "/"
    rabbitmqctl("purge_queue", "-p", vhost, "herald.send.commands")


FAULTS: dict[str, Callable[[System, Callable[[], int]], None]] = {
    "kill -9 sender": fault_kill_sender,
    "kill -9 scheduler materialising": fault_kill_scheduler_materialising,
    "kill -9 scheduler dispatching": fault_kill_scheduler_dispatching,
    "database connections cut dispatching": fault_cut_database_connections_dispatching,
    "purge send queue": fault_purge_send_queue,
    "restart RabbitMQ": fault_restart_rabbitmq,
    "restart PostgreSQL": fault_restart_postgresql,
    "stub down 30 s": fault_stub_down,
    "stub hangs 10 s": fault_stub_hangs,
}
NEEDS = {
    "restart RabbitMQ": "rabbitmqctl",
    "restart PostgreSQL": "pg_ctlcluster",
    "purge send queue": "rabbitmqctl",
}
# The scheduler sends nothing: a fault of its own must cause no duplicate at all.
SCHEDULER_FAULTS = {
    "kill -9 scheduler materialising",
    "kill -9 scheduler dispatching",
    "database connections cut dispatching",
    "purge send queue",
}
# A short lease, so that purged commands' rows are dispatched again well before the end.
FAULT_ENV = {"purge send queue": {"HERALD_DISPATCH_LEASE": "15"}}


def readyz(system: System) -> int:
    try:
        return httpx.get(f"http://127.0.0.1:{system.api_port}/readyz", timeout=5).status_code
    except httpx.HTTPError:
        return 0


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault(fault: str, start_system: StartSystem, fault_report: list[dict[str, Any]]) -> None:
    if fault in NEEDS and shutil.which(NEEDS[fault]) is None:
        pytest.skip(f"{NEEDS[fault]} is not on this machine")
    system = start_system(
        env={**SENDER_ENV, "HERALD_MATERIALISE_CHUNK_SIZE": "100", **FAULT_ENV.get(fault, {})},
        stub_args=STUB_ARGS,
    )
    rows = [(phone(n), "900", "a", ZONES[n % len(ZONES)]) for n in range(CLIENTS)]
    import_clients(system, rows)
    tz_of = {int(r[0]): r[3] for r in rows}
    # Open everywhere for the whole test: Moscow 03:00-02:00 next day leaves one closed hour,
    # placed where it cannot be reached in the next ten minutes in any of the zones.
    window_start = (datetime.now(zone("Europe/Moscow")) - timedelta(hours=2)).time()
    window_end = (datetime.now(zone("Europe/Moscow")) - timedelta(hours=3)).time()
    window = SendWindow(
        window_start.replace(second=0, microsecond=0), window_end.replace(second=0, microsecond=0)
    )
    end_at = datetime.now(UTC) + timedelta(minutes=8)
    created: list[int] = []

    def mailing() -> int:
        body = create_mailing(
            system,
            end_at=iso(end_at),
            send_window={
                "start": window.start.strftime("%H:%M"),
                "end": window.end.strftime("%H:%M"),
            },
        )
        created.append(body["id"])
        return int(body["id"])

    started = datetime.now(UTC)
    FAULTS[fault](system, mailing)
    ended = datetime.now(UTC)
    mailing_id = created[0]

    # Recovered by themselves: no restart by the test except of a killed process.
    wait_for(lambda: readyz(system) == 200, 90, "/readyz to recover")
    wait_all_final(system, mailing_id, CLIENTS, timeout=400)

    received = system.stub_received()
    ok = [r for r in received if r["outcome"] == "ok"]
    per_id = Counter(r["id"] for r in ok)
    first_ok: dict[int, float] = {}
    for record in sorted(ok, key=lambda r: r["answered_at"]):
        first_ok.setdefault(record["id"], record["answered_at"])
    duplicates = {i for i, n in per_id.items() if n > 1}
    window_start_ts = (started - IN_FLIGHT_SLACK).timestamp()
    window_end_ts = (ended + IN_FLIGHT_SLACK).timestamp()
    in_flight = {i for i in duplicates if window_start_ts <= first_ok[i] <= window_end_ts}
    late = [r for r in received if r["received_at"] >= end_at.timestamp()]
    outside = [
        r
        for r in received
        if not is_inside(
            datetime.fromtimestamp(r["received_at"], UTC), zone(tz_of[r["phone"]]), window
        )
    ]
    statuses = ledger.statuses(system.database_url, mailing_id)
    fault_report.append(
        {
            "fault": fault,
            "messages": sum(statuses.values()),
            "sent": statuses.get("sent", 0),
            "duplicates": len(duplicates),
            "in_flight_duplicates": len(in_flight),
            "late_sends": len(late),
            "outside_window": len(outside),
        }
    )

    rows_by_client = Counter(
        r["client_id"] for r in ledger.messages(system.database_url, mailing_id)
    )
    assert len(rows_by_client) == CLIENTS
    assert max(rows_by_client.values()) == 1
    assert statuses == {"sent": CLIENTS}
    if fault in SCHEDULER_FAULTS:
        assert duplicates == set(), f"{len(duplicates)} sent twice by a scheduler fault"
    assert duplicates == in_flight, (
        f"duplicates outside the fault's in-flight window: {duplicates - in_flight}"
    )
    assert late == []
    assert outside == []
    ledger.assert_counters_match_ledger(system.database_url, mailing_id)
    for name, service in system.services.items():
        assert service.running, f"{name} died during '{fault}'"
    # Graceful stop still works after the fault.
    for name in ("sender-2", "scheduler"):
        service = system.services[name]
        service.signal(signal.SIGTERM)
        assert service.process is not None
        assert service.process.wait(timeout=15) == 0, f"{name} did not exit cleanly"
