"""The stub's fault configuration: validated field by field, immutable, replaced as a whole.

The same validators serve the command line and ``PUT /_stub/config``, so both reject a bad
value with the same message naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

# The well-known development token, the same default as the sender's; not a secret.
DEFAULT_TOKEN: Final = "dev-probe-token"  # noqa: S105
OUTAGE_MODES: Final = ("503", "reset")


class ConfigError(ValueError):
    """A configuration value is invalid; the message starts with the field's name."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class OutageWindow:
    """A span of the monotonic clock during which the stub plays dead."""

    starts_at: float
    ends_at: float

    @classmethod
    def after(cls, origin: float, start: float, duration: float) -> OutageWindow:
        return cls(origin + start, origin + start + duration)


def number(field: str, value: object) -> float:
    # bool is an int to Python but never a number in a config file.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(field, "must be a number")
    if not math.isfinite(value):
        raise ConfigError(field, "must be finite")
    return float(value)


def non_negative(field: str, value: object) -> float:
    result = number(field, value)
    if result < 0:
        raise ConfigError(field, "must be >= 0")
    return result


def probability(field: str, value: object) -> float:
    result = number(field, value)
    if not 0.0 <= result <= 1.0:
        raise ConfigError(field, "must be a probability between 0 and 1")
    return result


def outage_mode(field: str, value: object) -> str:
    if value not in OUTAGE_MODES:
        raise ConfigError(field, f"must be one of {', '.join(OUTAGE_MODES)}")
    return str(value)


def outage_span(field: str, start: object, duration: object) -> tuple[float, float]:
    """An outage as (start offset, duration) in seconds; the start may lie in the past."""
    start_seconds = number(field, start)
    duration_seconds = number(field, duration)
    if duration_seconds <= 0:
        raise ConfigError(field, "an outage's duration must be > 0")
    return start_seconds, duration_seconds


def token(field: str, value: object) -> str | None:
    # An empty token turns authentication off, like an absent one.
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(field, "must be a string or null")
    return value


_NUMBER_FIELDS: Final = {
    "latency_ms": non_negative,
    "jitter_ms": non_negative,
    "load_latency_ms": non_negative,
    "error_rate": probability,
    "malformed_rate": probability,
    "hang_rate": probability,
    "hang_seconds": non_negative,
    "reset_rate": probability,
    "rate_limit": non_negative,
}


@dataclass(frozen=True, slots=True)
class StubConfig:
    """How the stub misbehaves; every rate is a probability per request."""

    token: str | None = DEFAULT_TOKEN
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    # Each request in flight adds this to an answer's latency: an API that slows with load.
    load_latency_ms: float = 0.0
    error_rate: float = 0.0
    malformed_rate: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    reset_rate: float = 0.0
    rate_limit: float = 0.0
    outages: tuple[OutageWindow, ...] = ()
    outage_mode: str = "503"

    def in_outage(self, now: float) -> bool:
        return any(window.starts_at <= now < window.ends_at for window in self.outages)

    def updated(self, changes: Mapping[str, object], now: float) -> StubConfig:
        """This config with ``changes`` applied; outages given here start relative to ``now``."""
        values: dict[str, Any] = {}
        for field, value in changes.items():
            if field in _NUMBER_FIELDS:
                values[field] = _NUMBER_FIELDS[field](field, value)
            elif field == "token":
                values[field] = token(field, value)
            elif field == "outage_mode":
                values[field] = outage_mode(field, value)
            elif field == "outages":
                values[field] = _outages(field, value, now)
            else:
                raise ConfigError(field, "unknown setting")
        return replace(self, **values)

    def to_json(self, now: float) -> dict[str, Any]:
        """The config as ``PUT /_stub/config`` takes it, outages relative to ``now``."""
        return {
            "token": self.token,
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "load_latency_ms": self.load_latency_ms,
            "error_rate": self.error_rate,
            "malformed_rate": self.malformed_rate,
            "hang_rate": self.hang_rate,
            "hang_seconds": self.hang_seconds,
            "reset_rate": self.reset_rate,
            "rate_limit": self.rate_limit,
            "outages": [
                [round(window.starts_at - now, 3), round(window.ends_at - window.starts_at, 3)]
                for window in self.outages
                if window.ends_at > now
            ],
            "outage_mode": self.outage_mode,
        }


def _outages(field: str, value: object, now: float) -> tuple[OutageWindow, ...]:
    if not isinstance(value, list):
        raise ConfigError(field, "must be a list of [start, duration] pairs")
    windows = []
    for pair in value:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(field, "must be a list of [start, duration] pairs")
        start, duration = outage_span(field, pair[0], pair[1])
        windows.append(OutageWindow.after(now, start, duration))
    return tuple(windows)
