"""The circuit breaker: stop calling the external API while it is down, probe it, resume.

closed ──(threshold consecutive failures, or a 401)──▶ open ──(cool-down)──▶ half-open
half-open ──(the probe succeeds)──▶ closed;  half-open ──(the probe fails)──▶ open, with
the cool-down doubled up to its maximum. The breaker only keeps state; the consumer acts
on its changes (stops taking commands, waits the cool-down, resumes).
"""

from collections.abc import Callable
from enum import IntEnum

import structlog

from herald_common.metrics import CIRCUIT_STATE

log = structlog.get_logger()


class CircuitState(IntEnum):
    # The values are the CIRCUIT_STATE gauge's.
    closed = 0
    half_open = 1
    open = 2


class CircuitBreaker:
    def __init__(
        self,
        *,
        threshold: int,
        cooldown: float,
        max_cooldown: float,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be >= 1")
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max(max_cooldown, cooldown)
        self.cooldown = cooldown
        self.state = CircuitState.closed
        self.consecutive_failures = 0
        self._listeners: list[Callable[[CircuitState], None]] = []
        CIRCUIT_STATE.set(self.state.value)

    def add_listener(self, listener: Callable[[CircuitState], None]) -> None:
        """Call ``listener`` with the new state on every change."""
        self._listeners.append(listener)

    @property
    def is_closed(self) -> bool:
        return self.state is CircuitState.closed

    @property
    def is_open(self) -> bool:
        return self.state is CircuitState.open

    @property
    def is_half_open(self) -> bool:
        return self.state is CircuitState.half_open

    def record_success(self) -> None:
        self.consecutive_failures = 0
        if self.state is CircuitState.half_open:
            self.cooldown = self.base_cooldown
            self._enter(CircuitState.closed)
            log.info("circuit.closed")

    def record_failure(self) -> None:
        if self.state is CircuitState.open:
            # Answers of requests started before the circuit opened say nothing new.
            return
        self.consecutive_failures += 1
        if self.state is CircuitState.half_open:
            self._open(reason="probe_failed")
        elif self.consecutive_failures >= self.threshold:
            self._open(reason="consecutive_failures")

    def trip(self) -> None:
        """Open at once: every request would fail the same way (the token was rejected)."""
        if self.state is CircuitState.half_open:
            self._open(reason="probe_unauthorized")
        elif self.state is CircuitState.closed:
            self._open(reason="unauthorized")

    def half_open(self) -> None:
        """The cool-down has passed: let one probe request through."""
        if self.state is CircuitState.open:
            self._enter(CircuitState.half_open)
            log.info("circuit.half_open")

    def _open(self, *, reason: str) -> None:
        if self.state is CircuitState.half_open:
            # Still failing after a cool-down: wait longer before the next probe.
            self.cooldown = min(self.cooldown * 2, self.max_cooldown)
        self._enter(CircuitState.open)
        log.warning(
            "circuit.opened",
            reason=reason,
            consecutive_failures=self.consecutive_failures,
            cooldown_seconds=self.cooldown,
        )

    def _enter(self, state: CircuitState) -> None:
        self.state = state
        CIRCUIT_STATE.set(state.value)
        for listener in self._listeners:
            listener(state)
