"""REST API calls made while a dispatch runs, timed from the client: GET /mailings/{id}/stats
and POST /clients, alternately, at a fixed pace, in a thread of their own."""

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.population import phone

# Clients created under load are tagged so that they never match a benchmark mailing.
LOAD_TAG = "api-load"
FIRST_LOAD_PHONE = 900_000_000


@dataclass
class ApiLoad:
    client: httpx.Client
    mailing_id: int
    # Requests per second of both kinds together.
    rate: float = 10.0
    max_seconds: float = 1800.0
    latencies_ms: dict[str, list[float]] = field(
        default_factory=lambda: {"get_mailing_stats": [], "post_client": []}
    )
    errors: dict[str, int] = field(
        default_factory=lambda: {"get_mailing_stats": 0, "post_client": 0}
    )
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="api-load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        pause = 1.0 / self.rate
        deadline = time.monotonic() + self.max_seconds
        n = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            if n % 2 == 0:
                self._timed("get_mailing_stats", "GET", f"/mailings/{self.mailing_id}/stats", None)
            else:
                body = {
                    "phone": phone(FIRST_LOAD_PHONE + n),
                    "tag": LOAD_TAG,
                    "timezone": "Europe/Moscow",
                }
                self._timed("post_client", "POST", "/clients", body)
            n += 1
            self._stop.wait(pause)

    def _timed(self, kind: str, method: str, path: str, body: dict[str, Any] | None) -> None:
        started = time.perf_counter()
        try:
            response = self.client.request(method, path, json=body)
        except httpx.HTTPError:
            self.errors[kind] += 1
            return
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code >= 400:
            self.errors[kind] += 1
            return
        self.latencies_ms[kind].append(elapsed)
