"""The probe stub's own counters over a run: requests, successes, duplicates and its CPU;
and, after a run, when each request arrived."""

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True, slots=True)
class StubSample:
    at: float  # monotonic
    requests: int
    ok: int
    cpu_seconds: float


@dataclass
class StubWatch:
    """Reads ``GET /_stub/stats``; :meth:`sample` is called by the usage sampler's thread."""

    client: httpx.Client
    samples: list[StubSample] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        response = self.client.get("/_stub/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def received_at(self) -> list[float]:
        """When each request reached the stub (its wall clock), from ``/_stub/received``."""
        response = self.client.get("/_stub/received")
        response.raise_for_status()
        return [float(json.loads(line)["received_at"]) for line in response.iter_lines() if line]

    def sample(self, at: float | None = None) -> StubSample:
        stats = self.stats()
        sample = StubSample(
            at=time.monotonic() if at is None else at,
            requests=int(stats["requests"]),
            ok=int(stats["by_outcome"]["ok"]),
            cpu_seconds=float(stats["cpu_seconds"]),
        )
        self.samples.append(sample)
        return sample

    def on_sample(self, at: float) -> None:
        # A missed sample only coarsens the series.
        with contextlib.suppress(httpx.HTTPError):
            self.sample(at)

    def sustained_rate(self, total: int, low: float = 0.1, high: float = 0.9) -> float | None:
        """Successes per second from when ``low`` to when ``high`` of ``total`` had succeeded
        (interpolated between samples): the steady state, without ramp-up and tail."""
        start, end = self._reached(low * total), self._reached(high * total)
        if start is None or end is None or end <= start:
            return None
        return (high - low) * total / (end - start)

    def _reached(self, ok: float) -> float | None:
        """When the count of successes reached ``ok``, interpolated between two samples."""
        for before, after in zip(self.samples, self.samples[1:], strict=False):
            if before.ok < ok <= after.ok:
                share = (ok - before.ok) / (after.ok - before.ok)
                return before.at + share * (after.at - before.at)
        return None

    def cpu_per_request_ms(self) -> float | None:
        if len(self.samples) < 2:
            return None
        first, last = self.samples[0], self.samples[-1]
        requests = last.requests - first.requests
        if requests <= 0:
            return None
        return (last.cpu_seconds - first.cpu_seconds) / requests * 1000
