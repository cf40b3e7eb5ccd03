"""Every Prometheus metric herald exports, defined once so that names stay consistent.

The api serves them on ``/metrics``; each worker serves them on a port of its own
(:func:`serve_metrics`). docs/observability.md describes each one.

Several processes of one service (the api's uvicorn workers) share their metrics
through prometheus_client's multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set
before prometheus_client is imported, every process writes its values to files there
and :func:`collector_registry` merges them. Each gauge says how its values merge.
"""

import functools
import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "herald_http_requests_total", "REST API requests.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "herald_http_request_duration_seconds",
    "REST API request latency.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MESSAGES_FINAL = Counter(
    "herald_messages_final_total",
    "Messages that reached a final status, as applied to the ledger: each message once, by"
    " the first final status it reached.",
    ["status"],
)
MESSAGES_SENT_LATE = Counter(
    "herald_messages_sent_late_total",
    "Messages already expired or cancelled (counted so in herald_messages_final_total) that"
    " a late sent moved to sent: the API accepted a request that was in flight.",
    ["replaced"],
)
SEND_ATTEMPTS = Counter(
    "herald_send_attempts_total",
    "Requests to the external send API, by outcome class.",
    ["outcome"],
)
PROBE_LATENCY = Histogram(
    "herald_probe_request_duration_seconds",
    "Latency of requests to the external send API.",
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RETRIES_SCHEDULED = Counter(
    "herald_retries_scheduled_total", "Messages deferred through a delay queue, by tier.", ["tier"]
)
CIRCUIT_STATE = Gauge(
    "herald_circuit_state",
    "Sender circuit breaker: 0 closed, 1 half-open, 2 open.",
    # Several processes on one port: the worst state of those alive.
    multiprocess_mode="livemax",
)
PROBE_UNAUTHORIZED = Counter(
    "herald_probe_unauthorized_total", "401 answers from the external send API (token rejected)."
)
SENDER_REQUEST_TIMEOUT = Gauge(
    "herald_sender_request_timeout_seconds",
    "Timeout of the next request to the external API, learned from its answer times.",
    multiprocess_mode="livemax",
)
SENDER_CONCURRENCY_LIMIT = Gauge(
    "herald_sender_concurrency_limit",
    "Requests this sender lets be in flight, adapted to the external API's latency.",
    multiprocess_mode="livesum",
)
SENDER_INFLIGHT = Gauge(
    "herald_sender_inflight_requests",
    "Requests in flight in this sender.",
    multiprocess_mode="livesum",
)
SENDER_COMMANDS_INFLIGHT = Gauge(
    "herald_sender_commands_inflight",
    "Send commands being processed by this sender.",
    multiprocess_mode="livesum",
)
SENDER_CLOCK_OFFSET = Gauge(
    "herald_sender_clock_offset_seconds",
    "The database's clock minus this sender's, as last measured (ends and windows are judged"
    " by the database's).",
    multiprocess_mode="liveall",
)
SENDER_RATE_IN_FORCE = Gauge(
    "herald_sender_rate_limit_in_force",
    "Requests/s all senders together may start now (HERALD_PROBE_RATE_LIMIT, lowered while"
    " the API answers 429), as this sender last leased it.",
    multiprocess_mode="liveall",
)
SENDER_RATE_WAIT = Histogram(
    "herald_sender_rate_limit_wait_seconds",
    "How long a request waited for its slot of the shared rate limit.",
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
)
LEASES_EXPIRED = Counter(
    "herald_messages_lease_expired_total",
    "Queued or retrying messages given back to the dispatcher because no command held them"
    " any more (a lost command, a dead sender).",
)
SENDER_STALE_MESSAGES = Counter(
    "herald_sender_stale_messages_total",
    "Messages a sender skipped because its command's dispatch token was no longer theirs"
    " (a copy of a command whose messages were dispatched again, or already settled).",
)
SENDER_COMMANDS_DEAD_LETTERED = Counter(
    "herald_sender_commands_dead_lettered_total",
    "Send commands a sender parked in herald.dead: unreadable, or a bug met processing them.",
    ["reason"],
)
# Backlogs are counted in the database by each process in turn: the latest count is right.
OUTBOX_BACKLOG = Gauge(
    "herald_outbox_backlog", "Outbox rows not yet published.", multiprocess_mode="mostrecent"
)
DUE_UNQUEUED = Gauge(
    "herald_due_unqueued_messages",
    "Ledger rows that are due but not yet queued.",
    multiprocess_mode="mostrecent",
)
LEDGER_MESSAGES = Gauge(
    "herald_messages",
    "Messages in the ledger by status: the sums of mailing_counters, refreshed by the "
    "scheduler every few seconds.",
    ["status"],
    multiprocess_mode="mostrecent",
)
LEDGER_BATCH_SIZE = Histogram(
    "herald_ledger_batch_size",
    "Status outcomes applied per ledger transaction.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
)
LEDGER_LAG = Histogram(
    "herald_ledger_lag_seconds",
    "Time from a sender's outcome to its ledger write.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


REPORTS_SENT = Counter(
    "herald_reports_sent_total",
    "Daily reports the SMTP server accepted (by this process).",
)
REPORTS_FAILED = Counter(
    "herald_reports_failed_total",
    "Daily report sends that failed: rejected (a 5xx answer; not retried) or unavailable"
    " (unreachable or 4xx until the retry time ran out; tried again later).",
    ["reason"],
)
REPORT_LAST_SUCCESS = Gauge(
    "herald_report_last_success_timestamp_seconds",
    "When a daily report was last accepted by the SMTP server, by any replica (read from"
    " the report claims), as a Unix time.",
    multiprocess_mode="max",
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serve this process's metrics on ``http://host:port/metrics`` (0 disables)."""
    if port:
        start_http_server(port, addr=host, registry=collector_registry())


def latest() -> bytes:
    """The metrics in Prometheus' text format (what ``/metrics`` answers)."""
    return generate_latest(collector_registry())


@functools.cache
def collector_registry() -> CollectorRegistry:
    """This process's registry, or in multiprocess mode one that merges every process's files.

    Read on first use, not at import: the api sets the directory before its workers start.
    """
    path = os.environ.get(MULTIPROC_DIR_ENV)
    if not path:
        return REGISTRY
    registry = CollectorRegistry()
    registry.register(_LiveProcessesCollector(path))
    return registry


class _LiveProcessesCollector(Collector):
    """MultiProcessCollector that first drops the ``live*`` gauges of processes that died.

    Nobody else tells prometheus_client that a worker died (uvicorn restarts it), and the
    in-flight gauges of a dead worker would otherwise count forever.
    """

    def __init__(self, path: str) -> None:
        self._path = path
        # prometheus_client's multiprocess module has no annotations (hence the ignores).
        self._collector = MultiProcessCollector(None, path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        forget_dead_processes(self._path)
        metrics: Iterable[Metric] = self._collector.collect()  # type: ignore[no-untyped-call]
        return metrics


def forget_dead_processes(path: str) -> list[int]:
    """Remove the live-gauge files of processes that no longer run; their pids."""
    dead = sorted(
        {pid for pid in map(_pid_of, Path(path).glob("gauge_live*_*.db")) if not _alive(pid)}
    )
    for pid in dead:
        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
    return dead


def clear_multiprocess_dir(path: str) -> None:
    """Remove values a previous run left in ``path``; this process's own files stay."""
    own = os.getpid()
    for values in Path(path).glob("*.db"):
        if _pid_of(values) != own:
            values.unlink(missing_ok=True)


def _pid_of(values: Path) -> int:
    # Files are named <type>[_<mode>]_<pid>.db.
    tail = values.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


CLIENTS_CAUGHT_UP = Counter(
    "herald_clients_caught_up_total",
    "Clients the scheduler's catch-up pass reconciled because no client event had done so"
    " within its grace period (the event was lost, dead-lettered or late).",
)
