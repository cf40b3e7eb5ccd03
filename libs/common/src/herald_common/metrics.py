"""Every Prometheus metric herald exports, defined once so that names stay consistent.

The api serves them on ``/metrics``; each worker serves them on a port of its own
(:func:`serve_metrics`). docs/observability.md describes each one.
"""

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
    "Messages that reached a final status, as applied to the ledger.",
    ["status"],
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
    "herald_retries_scheduled_total", "Commands deferred through a delay queue.", ["tier"]
)
CIRCUIT_STATE = Gauge(
    "herald_circuit_state", "Sender circuit breaker: 0 closed, 1 half-open, 2 open."
)
PROBE_UNAUTHORIZED = Counter(
    "herald_probe_unauthorized_total", "401 answers from the external send API (token rejected)."
)
SENDER_INFLIGHT = Gauge("herald_sender_inflight_requests", "Requests in flight in this sender.")
SENDER_COMMANDS_INFLIGHT = Gauge(
    "herald_sender_commands_inflight", "Send commands being processed by this sender."
)
OUTBOX_BACKLOG = Gauge("herald_outbox_backlog", "Outbox rows not yet published.")
DUE_UNQUEUED = Gauge("herald_due_unqueued_messages", "Ledger rows that are due but not yet queued.")
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


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Serve this process's metrics on ``http://host:port/metrics`` (0 disables)."""
    if port:
        start_http_server(port, addr=host)
