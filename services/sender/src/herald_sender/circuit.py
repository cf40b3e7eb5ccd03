"""The circuit breaker: stop calling the external API while it is down, try it, resume.

closed ──(failure rate over the last requests reaches its limit, or a 401)──▶ open
open ──(cool-down)──▶ half-open ──(the trial succeeds)──▶ closed
half-open ──(the trial fails)──▶ open, with the cool-down doubled up to its maximum.

It opens on a failure *rate* over a sliding window of answers, not on consecutive
failures: requests that hang all time out together, so an API that drops 2 % of requests
produces runs of consecutive timeouts while it serves the other 98 % well (the benchmark's
faults run opened a consecutive-failures breaker every few seconds, and sent 100
messages/s instead of thousands). The breaker only keeps state; the consumer acts on its
changes (stops taking commands, waits the cool-down, resumes).
"""

from collections import deque
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
    """Opens when at least ``failure_rate`` of the last ``window`` answers were failures.

    ``min_calls`` answers (half the window unless given) must be in before it judges, so
    that the first few answers after a start or a recovery cannot open it by chance.
    """

    def __init__(
        self,
        *,
        window: int,
        failure_rate: float,
        cooldown: float,
        max_cooldown: float,
        min_calls: int | None = None,
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        if not 0 < failure_rate <= 1:
            raise ValueError("failure_rate must be in (0, 1]")
        self.failure_rate = failure_rate
        self.min_calls = max(1, min(window, window // 2 if min_calls is None else min_calls))
        self.base_cooldown = cooldown
        self.max_cooldown = max(max_cooldown, cooldown)
        self.cooldown = cooldown
        self.state = CircuitState.closed
        # The last `window` answers, True for a failure, and how many of them failed.
        self._answers: deque[bool] = deque(maxlen=window)
        self.failures = 0
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

    @property
    def calls(self) -> int:
        """Answers in the window."""
        return len(self._answers)

    def record_success(self) -> None:
        if self.state is CircuitState.half_open:
            self.cooldown = self.base_cooldown
            self._forget()
            self._enter(CircuitState.closed)
            log.info("circuit.closed")
        elif self.state is CircuitState.closed:
            self._record(failed=False)

    def record_failure(self) -> None:
        if self.state is CircuitState.open:
            # Answers of requests started before the circuit opened say nothing new.
            return
        if self.state is CircuitState.half_open:
            self._open(reason="trial_failed")
            return
        self._record(failed=True)
        if self.calls >= self.min_calls and self.failures >= self.failure_rate * self.calls:
            self._open(reason="failure_rate")

    def _record(self, *, failed: bool) -> None:
        answers = self._answers
        if len(answers) == answers.maxlen and answers[0]:
            self.failures -= 1  # the oldest answer, a failure, leaves the window
        answers.append(failed)
        self.failures += failed

    def _forget(self) -> None:
        self._answers.clear()
        self.failures = 0

    def trip(self) -> None:
        """Open at once: every request would fail the same way (the token was rejected)."""
        if self.state is CircuitState.half_open:
            self._open(reason="trial_unauthorized")
        elif self.state is CircuitState.closed:
            self._open(reason="unauthorized")

    def half_open(self) -> None:
        """The cool-down has passed: let one trial request through."""
        if self.state is CircuitState.open:
            self._enter(CircuitState.half_open)
            log.info("circuit.half_open")

    def _open(self, *, reason: str) -> None:
        if self.state is CircuitState.half_open:
            # Still failing after a cool-down: wait longer before the next trial.
            self.cooldown = min(self.cooldown * 2, self.max_cooldown)
        log.warning(
            "circuit.opened",
            reason=reason,
            failures=self.failures,
            calls=self.calls,
            cooldown_seconds=self.cooldown,
        )
        # After the cool-down, the trial decides; then the window starts afresh.
        self._forget()
        self._enter(CircuitState.open)

    def _enter(self, state: CircuitState) -> None:
        self.state = state
        CIRCUIT_STATE.set(state.value)
        for listener in self._listeners:
            listener(state)
