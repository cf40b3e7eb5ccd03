"""The benchmark's runs. Each starts its own herald on a fresh database and vhost, measures,
and returns its figures as a JSON-ready dict.

- ingest: bulk import through the API (rows/s), then materialising a mailing over every
  imported client (time until each ledger row exists);
- dispatch: one mailing over ``size`` clients, until every message is final: rate at the
  stub, completion time, first send, sent_at - due_at, CPU and memory, duplicates;
- latency: small mailings, one after another, on an idle system: first send, due lag;
- faults: a dispatch with the stub failing and hanging;
- ratelimit: the same dispatch without HERALD_PROBE_RATE_LIMIT, with a limit above the
  rate it reaches (the cost of leasing slots) and with a binding one (the limit holds);
- stub: what the probe stub can serve at most, so that it is known not to be the limit.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench import machine, profiling
from bench.api_load import ApiLoad
from bench.population import BENCH_TAG, csv_chunks, seed_clients
from bench.stats import busiest_window, percentile, rate, rounded
from bench.stub_watch import StubWatch
from bench.system import (
    BIN,
    PROBE_TOKEN,
    Service,
    System,
    SystemOptions,
    free_port,
    queue_depths,
    running_system,
)
from bench.usage import GroupUsage, UsageTracker, as_json

POLL_SECONDS = 0.25
# A limit the busiest second reached this share of is binding, whatever the run without one.
BINDING_SHARE = 0.95
UNSENT = ("scheduled", "queued", "retrying")
STATUSES = ("scheduled", "queued", "retrying", "sent", "failed", "expired", "cancelled")


@dataclass(frozen=True)
class Servers:
    """Where the runs go, and how every run's herald is started (``--env``, ``--uvloop``,
    ``--sender-nice``: experiments with settings, off by default)."""

    database_url: str
    amqp_url: str
    out_dir: Path
    env: tuple[tuple[str, str], ...] = ()
    uvloop: bool = False
    sender_nice: int = 0

    def options(self, *, env: dict[str, str] | None = None, **fields: Any) -> SystemOptions:
        """``env``: a run's own variables, over ``--env``'s (a run defines what it measures)."""
        return SystemOptions(
            env={**dict(self.env), **(env or {})},
            uvloop=self.uvloop,
            sender_nice=self.sender_nice,
            **fields,
        )


@dataclass(frozen=True)
class DispatchPlan:
    name: str
    size: int
    senders: int
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    stub_faults: tuple[str, ...] = ()
    api_load: bool = False
    profile_seconds: int = 0
    timeout: float = 900.0
    # HERALD_PROBE_RATE_LIMIT of a rate-limit run (0: the unlimited run they compare
    # with); None for every other run.
    rate_limit: float | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _header(run: str, name: str) -> dict[str, Any]:
    return {
        "run": run,
        "name": name,
        "started_at": _now().isoformat(timespec="seconds"),
        "load_average_at_start": machine.load_average(),
    }


@contextmanager
def _system(servers: Servers, name: str, options: SystemOptions) -> Iterator[System]:
    log_dir = servers.out_dir / "logs" / name
    with running_system(
        database_server_url=servers.database_url,
        amqp_server_url=servers.amqp_url,
        log_dir=log_dir,
        options=options,
    ) as system:
        yield system


def _tracker(system: System, on_sample: Any = None) -> UsageTracker:
    groups: dict[str, Any] = {
        name: (lambda pid=service.pid: [pid]) for name, service in system.services.items()
    }
    database = system.database_name
    groups["postgres_backends"] = lambda: machine.postgres_backends(database)
    groups["postgres_shared"] = machine.postgres_shared_processes
    groups["rabbitmq"] = machine.rabbitmq_pids
    # The benchmark's own process (polling, API load, sampling) competes for the same cores.
    groups["bench"] = lambda: [os.getpid()]
    return UsageTracker(groups, on_sample=on_sample)


def _create_mailing(
    system: System, *, start_in: float, lasts: float, text: str = "herald benchmark"
) -> tuple[int, float, datetime]:
    """POST a mailing over the benchmark's clients: (id, wall time before the POST, end_at)."""
    now = _now()
    end_at = now + timedelta(seconds=start_in + lasts)
    body = {
        "text": text,
        "start_at": (now + timedelta(seconds=start_in)).isoformat(),
        "end_at": end_at.isoformat(),
        "filter": {"tags": [BENCH_TAG]},
    }
    created_at = time.time()
    with system.api_client() as api:
        response = api.post("/mailings", json=body)
    response.raise_for_status()
    return int(response.json()["id"]), created_at, end_at


def _counters(connection: psycopg.Connection[Any], mailing_id: int) -> dict[str, int]:
    row = connection.execute(
        f"SELECT {', '.join(STATUSES)} FROM mailing_counters WHERE mailing_id = %s",  # noqa: S608
        (mailing_id,),
    ).fetchone()
    return dict(zip(STATUSES, (int(v) for v in row), strict=True)) if row else {}


def _ledger_lag(connection: psycopg.Connection[Any], mailing_ids: list[int]) -> dict[str, Any]:
    """p50/p99 of sent_at - due_at over the sent messages, in milliseconds."""
    row = connection.execute(
        """
        SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (
                   ORDER BY extract(epoch FROM sent_at - due_at)),
               count(*)
        FROM messages WHERE mailing_id = ANY(%s) AND status = 'sent'
        """,
        (mailing_ids,),
    ).fetchone()
    if row is None or row[0] is None:
        return {"p50_ms": None, "p99_ms": None, "sent": 0}
    p50, p99 = row[0]
    return {"p50_ms": round(p50 * 1000, 1), "p99_ms": round(p99 * 1000, 1), "sent": int(row[1])}


def _sends_after_end(connection: psycopg.Connection[Any], mailing_ids: list[int]) -> int:
    row = connection.execute(
        """
        SELECT count(*) FROM messages m JOIN mailings g ON g.id = m.mailing_id
        WHERE m.mailing_id = ANY(%s) AND m.sent_at >= g.end_at
        """,
        (mailing_ids,),
    ).fetchone()
    return int(row[0]) if row else 0


def _resources(totals: dict[str, GroupUsage], system: System, messages: int) -> dict[str, Any]:
    herald = list(system.herald_services)
    herald_cpu = sum(totals[name].cpu_seconds for name in herald if name in totals)
    per_message = (lambda cpu: round(cpu / messages * 1000, 4)) if messages else (lambda _: None)
    return {
        "by_process": as_json(totals),
        "herald_cpu_seconds": round(herald_cpu, 3),
        "herald_cpu_ms_per_message": per_message(herald_cpu),
        "postgres_cpu_ms_per_message": per_message(totals["postgres_backends"].cpu_seconds),
        "rabbitmq_cpu_ms_per_message": per_message(totals["rabbitmq"].cpu_seconds),
        "peak_rss_mib": {
            "api": totals["api"].peak_rss_mib if "api" in totals else None,
            "scheduler": totals["scheduler"].peak_rss_mib if "scheduler" in totals else None,
            "sender": max(
                (totals[n].peak_rss_mib for n in herald if n.startswith("sender-")), default=None
            ),
        },
    }


def _stub_figures(
    watch: StubWatch, wall_seconds: float, throughput: float | None
) -> dict[str, Any]:
    stats = watch.stats()
    per_request = watch.cpu_per_request_ms()
    capacity = 1000 / per_request if per_request else None
    first, last = watch.samples[0], watch.samples[-1]
    return {
        "requests": stats["requests"],
        "by_outcome": {k: v for k, v in stats["by_outcome"].items() if v},
        "duplicate_ok_ids": stats["duplicate_ok_ids"],
        "cpu_ms_per_request": rounded(per_request, 4),
        "cpu_share_of_one_core": rounded((last.cpu_seconds - first.cpu_seconds) / wall_seconds, 3)
        if wall_seconds > 0
        else None,
        # One process on one core: what its CPU per request allows, against what it served.
        "capacity_requests_per_s": rounded(capacity, 0),
        "headroom": rounded(capacity / throughput, 1) if capacity and throughput else None,
    }


def dispatch(servers: Servers, plan: DispatchPlan) -> dict[str, Any]:
    """One mailing over ``plan.size`` clients, from its creation until every message is final."""
    result = _header("dispatch" if plan.rate_limit is None else "ratelimit", plan.name)
    result["plan"] = {
        "size": plan.size,
        "senders": plan.senders,
        "latency_ms": plan.latency_ms,
        "jitter_ms": plan.jitter_ms,
        "stub_faults": list(plan.stub_faults),
        "api_load": plan.api_load,
    }
    env = {}
    if plan.rate_limit is not None:
        result["plan"]["rate_limit"] = plan.rate_limit
        env["HERALD_PROBE_RATE_LIMIT"] = f"{plan.rate_limit:g}"
    options = servers.options(
        env=env,
        senders=plan.senders,
        latency_ms=plan.latency_ms,
        jitter_ms=plan.jitter_ms,
        stub_args=plan.stub_faults,
    )
    with _system(servers, plan.name, options) as system:
        seed_clients(system.libpq_url, plan.size)
        stub = StubWatch(system.stub_client())
        tracker = _tracker(system, on_sample=stub.on_sample)
        with psycopg.connect(system.libpq_url, autocommit=True) as db:
            tracker.start()
            mailing_id, created_at, end_at = _create_mailing(
                system, start_in=-1.0, lasts=plan.timeout + 600
            )
            started = time.monotonic()
            load = ApiLoad(system.api_client(timeout=30), mailing_id) if plan.api_load else None
            if load is not None:
                load.start()
            profiles: list[profiling.Recording] = []
            all_rows = all_final = None
            counts: dict[str, int] = {}
            while time.monotonic() - started < plan.timeout:
                counts = _counters(db, mailing_id)
                elapsed = time.monotonic() - started
                if all_rows is None and sum(counts.values()) >= plan.size:
                    all_rows = elapsed
                if all_rows is not None and not any(counts[s] for s in UNSENT):
                    all_final = elapsed
                    break
                if (
                    plan.profile_seconds
                    and not profiles
                    and counts.get("sent", 0) >= 0.05 * plan.size
                ):
                    profiles = _start_profiles(system, servers, plan)
                time.sleep(POLL_SECONDS)
            if load is not None:
                load.stop()
                load.client.close()
            totals = tracker.stop()
            wall = tracker.stopped_at - tracker.started_at
            stats = stub.stats()
            first_request = stats["first_request_at"]
            last_request = stats["last_request_at"]
            ok = int(stats["by_outcome"]["ok"])
            stub_avg = (
                rate(ok, last_request - first_request) if first_request and last_request else None
            )
            sustained = stub.sustained_rate(plan.size)
            result.update(
                {
                    "complete": all_final is not None,
                    "statuses": counts,
                    "first_send_s": rounded(first_request - created_at, 3)
                    if first_request
                    else None,
                    "all_rows_s": rounded(all_rows, 2),
                    "all_final_s": rounded(all_final, 2),
                    "end_to_end_msgs_per_s": rounded(rate(plan.size, all_final), 0),
                    "stub_msgs_per_s": rounded(stub_avg, 0),
                    "stub_sustained_msgs_per_s": rounded(sustained, 0),
                    "sent_minus_due": _ledger_lag(db, [mailing_id]),
                    "duplicates_at_stub": int(stats["duplicate_ok_ids"]),
                    "sends_after_end": _sends_after_end(db, [mailing_id])
                    + int(bool(last_request and last_request >= end_at.timestamp())),
                    "stub": _stub_figures(stub, wall, sustained or stub_avg),
                    "resources": _resources(totals, system, plan.size),
                }
            )
            if load is not None:
                result["api_under_load"] = _api_figures(load)
            if profiles:
                result["profile"] = _finish_profiles(profiles, plan.profile_seconds)
            if plan.rate_limit is not None:
                result["rate_limit"] = _rate_limit_figures(system, stub, db, plan, sustained)
        stub.client.close()
    return result


def _rate_limit_figures(
    system: System,
    stub: StubWatch,
    db: psycopg.Connection[Any],
    plan: DispatchPlan,
    sustained: float | None,
) -> dict[str, Any]:
    """What the external API saw: its busiest second, against the limit; and how many
    leases the senders took (read after the run, so that it costs nothing measured)."""
    moments = stub.received_at()
    busiest = busiest_window(moments, 1.0)
    limit = plan.rate_limit or None
    # A backend counts its updates in pg_stat_user_tables when its session ends: the
    # senders stop first (their CPU was read already), then the count is complete.
    for name, service in system.services.items():
        if name.startswith("sender-"):
            service.stop()
    leases = _rate_limit_updates(db) if limit else None
    return {
        "limit": limit,
        "requests": len(moments),
        "busiest_1s_requests": busiest,
        "busiest_1s_over_limit": rounded(busiest / limit, 3) if limit else None,
        "sustained_over_limit": rounded(sustained / limit, 3) if limit and sustained else None,
        "leases": leases,
        "requests_per_lease": rounded(len(moments) / leases, 1) if leases else None,
    }


def _rate_limit_updates(db: psycopg.Connection[Any], settle: float = 5.0) -> int | None:
    """Updates of the rate_limits row (one per lease; 429s add theirs), once every
    sender's backend has gone and reported them."""
    deadline = time.monotonic() + settle
    count = None
    while time.monotonic() < deadline:
        row = db.execute(
            "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'rate_limits'"
        ).fetchone()
        latest = int(row[0]) if row else None
        if latest is not None and latest == count:
            return count
        count = latest
        time.sleep(0.5)
    return count


def compare_rate_limits(results: list[dict[str, Any]]) -> None:
    """Each limited run's CPU per message beside the unlimited run's: the limiter's cost;
    and whether its limit binds: below the rate reached without one, or reached (within
    5 %) in the run's busiest second. The second reading keeps a limit that binds from
    passing for one above the rate when the machine is busy and the run without a limit
    slow."""
    runs = [r for r in results if r.get("run") == "ratelimit"]
    unlimited = next((r for r in runs if not r["plan"].get("rate_limit")), None)
    if unlimited is None:
        return
    free_rate = unlimited.get("stub_sustained_msgs_per_s")
    for result in runs:
        limit = result["plan"].get("rate_limit")
        if not limit:
            continue
        figures = result["rate_limit"]
        pressed = (figures.get("busiest_1s_over_limit") or 0.0) >= BINDING_SHARE
        figures["binding"] = bool(free_rate and limit < free_rate) or pressed
        figures["vs_unlimited"] = {
            key: rounded(result["resources"][key] - unlimited["resources"][key], 4)
            if result["resources"][key] is not None and unlimited["resources"][key] is not None
            else None
            for key in ("herald_cpu_ms_per_message", "postgres_cpu_ms_per_message")
        }


def _api_figures(load: ApiLoad) -> dict[str, Any]:
    return {
        kind: {
            "requests": len(values),
            "errors": load.errors[kind],
            "p50_ms": rounded(percentile(values, 0.5), 1),
            "p99_ms": rounded(percentile(values, 0.99), 1),
            "max_ms": rounded(max(values, default=0.0), 1),
        }
        for kind, values in load.latencies_ms.items()
    }


def _start_profiles(
    system: System, servers: Servers, plan: DispatchPlan
) -> list[profiling.Recording]:
    out_dir = servers.out_dir / "profiles" / plan.name
    recordings = []
    for name in ("scheduler", "sender-1", "api"):
        recording = profiling.record(name, system.services[name].pid, out_dir, plan.profile_seconds)
        if recording is not None:
            recordings.append(recording)
    return recordings


def _finish_profiles(recordings: list[profiling.Recording], seconds: int) -> dict[str, Any]:
    profiles: dict[str, Any] = {}
    for recording in recordings:
        if recording.wait(timeout=seconds + 30):
            profiles[recording.name] = {
                "file": str(recording.path),
                **profiling.summarise(recording.path),
            }
    return profiles


def ingest(servers: Servers, size: int, *, materialise: bool = True) -> list[dict[str, Any]]:
    """Import ``size`` clients through the bulk endpoint, then materialise a mailing over them."""
    results = []
    imported = _header("import", f"import-{size}")
    with _system(servers, f"ingest-{size}", servers.options(senders=0)) as system:
        tracker = _tracker(system)
        tracker.start()
        api_before = machine.usage(system.services["api"].pid)
        started = time.perf_counter()
        with system.api_client(timeout=3600) as api:
            response = api.post(
                "/clients/import",
                content=csv_chunks(size),
                headers={"Content-Type": "text/csv"},
            )
        elapsed = time.perf_counter() - started
        response.raise_for_status()
        body = response.json()
        totals = tracker.stop()
        imported.update(
            {
                "size": size,
                "seconds": round(elapsed, 2),
                "rows_per_s": rounded(rate(size, elapsed), 0),
                "created": body["created"],
                "invalid": body["invalid"],
                "api_rss_before_mib": round(api_before.peak_rss_mib, 1) if api_before else None,
                "api_peak_rss_mib": totals["api"].peak_rss_mib,
                "cpu_seconds": {
                    "api": totals["api"].cpu_seconds,
                    "scheduler": totals["scheduler"].cpu_seconds,
                    "postgres_backends": totals["postgres_backends"].cpu_seconds,
                },
            }
        )
        results.append(imported)
        if materialise:
            _wait_quiet(system)
            results.append(_materialise(system, size))
    return results


def materialise_only(servers: Servers, size: int) -> dict[str, Any]:
    """Materialise a mailing over ``size`` clients written straight into the database."""
    with _system(servers, f"materialise-{size}", servers.options(senders=0)) as system:
        seed_clients(system.libpq_url, size)
        return _materialise(system, size)


def _wait_quiet(system: System, timeout: float = 600.0) -> None:
    """Until every outbox event is published and the scheduler has handled them all."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(system.libpq_url, autocommit=True) as db:
        while time.monotonic() < deadline:
            row = db.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
            if row is not None and row[0] == 0 and not any(queue_depths(system.vhost).values()):
                return
            time.sleep(0.5)


def _materialise(system: System, size: int) -> dict[str, Any]:
    """A mailing that starts later (so nothing is sent): time until its ledger is complete."""
    result = _header("materialise", f"materialise-{size}")
    tracker = _tracker(system)
    with psycopg.connect(system.libpq_url, autocommit=True) as db:
        tracker.start()
        mailing_id, _, _ = _create_mailing(system, start_in=3600, lasts=3600)
        started = time.monotonic()
        done = None
        while time.monotonic() - started < 1800:
            if sum(_counters(db, mailing_id).values()) >= size:
                done = time.monotonic() - started
                break
            time.sleep(POLL_SECONDS / 2)
        totals = tracker.stop()
    result.update(
        {
            "size": size,
            "complete": done is not None,
            "seconds": rounded(done, 2),
            "rows_per_s": rounded(rate(size, done), 0),
            "scheduler_peak_rss_mib": totals["scheduler"].peak_rss_mib,
            "cpu_seconds": {
                "scheduler": totals["scheduler"].cpu_seconds,
                "postgres_backends": totals["postgres_backends"].cpu_seconds,
            },
        }
    )
    return result


def latency(servers: Servers, *, mailings: int = 5, size: int = 1000) -> dict[str, Any]:
    """Small mailings on an idle system, one after another: creation to first send."""
    result = _header("latency", f"latency-{mailings}x{size}")
    options = servers.options(senders=2, latency_ms=50, jitter_ms=10)
    first_sends: list[float] = []
    mailing_ids: list[int] = []
    duplicates = 0
    with _system(servers, result["name"], options) as system:
        seed_clients(system.libpq_url, size)
        stub = StubWatch(system.stub_client())
        with psycopg.connect(system.libpq_url, autocommit=True) as db:
            for n in range(mailings):
                stub.client.post("/_stub/reset").raise_for_status()
                mailing_id, created_at, _ = _create_mailing(
                    system, start_in=-1.0, lasts=600, text=f"latency probe {n}"
                )
                mailing_ids.append(mailing_id)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    first = stub.stats()["first_request_at"]
                    if first is not None:
                        first_sends.append(first - created_at)
                        break
                    time.sleep(0.01)
                while time.monotonic() < deadline:
                    counts = _counters(db, mailing_id)
                    if sum(counts.values()) >= size and not any(counts[s] for s in UNSENT):
                        break
                    time.sleep(POLL_SECONDS)
                # The stub is reset before each mailing: its duplicates are this mailing's.
                duplicates += int(stub.stats()["duplicate_ok_ids"])
            lag = _ledger_lag(db, mailing_ids)
            after_end = _sends_after_end(db, mailing_ids)
        stub.client.close()
    result.update(
        {
            "mailings": mailings,
            "size": size,
            "first_send_s": [round(v, 3) for v in first_sends],
            "first_send_p50_s": rounded(percentile(first_sends, 0.5), 3),
            "first_send_max_s": rounded(max(first_sends, default=0.0), 3),
            "sent_minus_due": lag,
            "duplicates_at_stub": duplicates,
            "sends_after_end": after_end,
        }
    )
    return result


def wait_for_first_request(
    watch: StubWatch, load: subprocess.Popen[Any], timeout: float = 120.0
) -> None:
    deadline = time.monotonic() + timeout
    while watch.sample().requests == 0:
        if load.poll() is not None:
            raise RuntimeError(f"the stub's load generator exited with {load.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the stub got no request within {timeout}s")
        time.sleep(0.05)


def stub_capacity(
    servers: Servers, *, seconds: float = 8.0, concurrency: int = 1000
) -> dict[str, Any]:
    """What the stub serves at most at the headline latency: driven to its limit by
    ``bench.stub_load`` (pyreqwest, in a process of its own) on an otherwise idle system.

    1,000 requests in flight allow 20,000 requests/s at 50 ms, more than the stub serves,
    and are 2.5 times what herald's senders ever hold open (2 x 200). More would measure
    connection overhead no run has: the stub's CPU per request grows with its open
    connections (0.065 ms at 1,000, 0.069 at 1,500 here).

    Measured alone at its limit rather than during a dispatch run, where herald, PostgreSQL
    and RabbitMQ share the cores with it and make each of its requests dearer.
    """
    result = _header("stub", "stub-capacity-50ms")
    log_dir = servers.out_dir / "logs" / result["name"]
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    stub = Service(
        "probe-stub",
        [
            str(BIN / "herald-probe-stub"),
            *("--port", str(port), "--token", PROBE_TOKEN),
            *("--latency-ms", "50", "--jitter-ms", "10"),
        ],
        dict(os.environ),
        log_dir / "probe-stub.log",
    )
    stub.start()
    try:
        stub.wait_listening(port)
        load = subprocess.Popen(
            [
                sys.executable,
                *("-m", "bench.stub_load", "--url", f"http://127.0.0.1:{port}"),
                *("--token", PROBE_TOKEN, "--seconds", str(seconds)),
                *("--concurrency", str(concurrency)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            watch = StubWatch(client)
            # The load's clock starts when its process has imported everything, which takes
            # seconds on a fresh machine (no bytecode yet): timed from the spawn, the window
            # once fell before its first request and measured an idle stub.
            wait_for_first_request(watch, load)
            # The middle of the load only: no ramp-up, no tail.
            time.sleep(seconds * 0.25)
            first = watch.sample()
            time.sleep(seconds * 0.5)
            last = watch.sample()
        output, _ = load.communicate(timeout=seconds + 60)
    finally:
        stub.stop()
    served = last.requests - first.requests
    elapsed = last.at - first.at
    result.update(
        {
            "latency_ms": 50,
            "jitter_ms": 10,
            "concurrency": concurrency,
            "client": json.loads(output),
            "served_per_s": rounded(served / elapsed, 0) if elapsed > 0 else None,
            "cpu_ms_per_request": rounded((last.cpu_seconds - first.cpu_seconds) / served * 1000, 4)
            if served
            else None,
            "cpu_share_of_one_core": rounded((last.cpu_seconds - first.cpu_seconds) / elapsed, 2)
            if elapsed > 0
            else None,
        }
    )
    # The client shares the two cores, so the stub rarely gets a whole one: what one core
    # serves at the CPU per request measured at this load is its capacity.
    per_request = result["cpu_ms_per_request"]
    result["capacity_per_core"] = rounded(1000 / per_request, 0) if per_request else None
    return result
