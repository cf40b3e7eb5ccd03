"""Which fault, if any, a send request meets, and how long the stub takes to answer it."""

from __future__ import annotations

import enum
import random
from typing import Final

from herald_probe_stub.config import StubConfig

ERROR_STATUSES: Final = (500, 502, 503)
# Bodies a 200 may carry that are not the API's schema: garbage, wrong types, nothing
# useful, the wrong JSON type, and JSON cut short.
MALFORMED_BODIES: Final = (
    b"not json",
    b'{"code": "zero"}',
    b"{}",
    b"[]",
    b'{"code": 0, "mess',
)


class Fault(enum.Enum):
    OUTAGE = "outage"
    RATE_LIMITED = "rate_limited"
    HANG = "hang"
    RESET = "reset"
    ERROR = "error"
    MALFORMED = "malformed"


class TokenBucket:
    """Admits ``rate`` requests per second on average, in bursts of up to one second's worth."""

    __slots__ = ("_capacity", "_rate", "_tokens", "_updated_at")

    def __init__(self, rate: float, now: float) -> None:
        self._rate = rate
        self._capacity = max(rate, 1.0)
        self._tokens = self._capacity
        self._updated_at = now

    def take(self, now: float) -> bool:
        elapsed = now - self._updated_at
        self._updated_at = now
        self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class FaultInjector:
    """Draws faults in a fixed order from one seeded generator, so that a seed replays a run."""

    __slots__ = ("_bucket", "_config", "_random")

    def __init__(self, config: StubConfig, rng: random.Random, now: float) -> None:
        self._random = rng
        self._config = config
        self._bucket = TokenBucket(config.rate_limit, now) if config.rate_limit > 0 else None

    @property
    def config(self) -> StubConfig:
        return self._config

    def reconfigure(self, config: StubConfig, now: float) -> None:
        if config.rate_limit != self._config.rate_limit:
            self._bucket = TokenBucket(config.rate_limit, now) if config.rate_limit > 0 else None
        self._config = config

    def decide(self, now: float) -> Fault | None:
        config = self._config
        if config.outages and config.in_outage(now):
            return Fault.OUTAGE
        if self._bucket is not None and not self._bucket.take(now):
            return Fault.RATE_LIMITED
        draw = self._random.random
        # A rate of 0 draws nothing: the common case costs no random numbers.
        if config.hang_rate and draw() < config.hang_rate:
            return Fault.HANG
        if config.reset_rate and draw() < config.reset_rate:
            return Fault.RESET
        if config.error_rate and draw() < config.error_rate:
            return Fault.ERROR
        if config.malformed_rate and draw() < config.malformed_rate:
            return Fault.MALFORMED
        return None

    def latency(self, in_flight: int = 0) -> float:
        """Seconds to wait before an answer: latency_ms plus or minus up to jitter_ms, plus
        load_latency_ms for each other request in flight."""
        config = self._config
        base = config.latency_ms + config.load_latency_ms * in_flight
        if not config.jitter_ms:
            return base / 1000.0
        jitter = self._random.uniform(-config.jitter_ms, config.jitter_ms)
        return max(0.0, base + jitter) / 1000.0

    def error_status(self) -> int:
        return self._random.choice(ERROR_STATUSES)

    def malformed_body(self) -> bytes:
        return self._random.choice(MALFORMED_BODIES)
