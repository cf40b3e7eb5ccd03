"""The circuit breaker's state machine."""

from herald_sender.circuit import CircuitBreaker, CircuitState


def make(threshold: int = 3, cooldown: float = 5.0, max_cooldown: float = 60.0) -> CircuitBreaker:
    return CircuitBreaker(threshold=threshold, cooldown=cooldown, max_cooldown=max_cooldown)


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker = make(threshold=3)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.is_closed
    breaker.record_failure()
    assert breaker.is_open
    assert breaker.cooldown == 5.0


def test_a_success_resets_the_count() -> None:
    breaker = make(threshold=3)
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure()
    assert breaker.is_closed
    assert breaker.consecutive_failures == 2


def test_trip_opens_at_once() -> None:
    breaker = make(threshold=10)
    breaker.trip()
    assert breaker.is_open


def test_results_while_open_change_nothing() -> None:
    breaker = make(threshold=1)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.trip()
    assert breaker.is_open
    assert breaker.cooldown == 5.0


def test_half_open_probe_success_closes_and_resets_cooldown() -> None:
    breaker = make(threshold=1)
    breaker.record_failure()
    breaker.half_open()
    breaker.record_failure()  # the probe fails: cool-down doubles
    assert breaker.is_open
    assert breaker.cooldown == 10.0
    breaker.half_open()
    assert breaker.is_half_open
    breaker.record_success()
    assert breaker.is_closed
    assert breaker.cooldown == 5.0
    assert breaker.consecutive_failures == 0


def test_cooldown_doubles_up_to_its_maximum() -> None:
    breaker = make(threshold=1, cooldown=5.0, max_cooldown=30.0)
    breaker.record_failure()
    cooldowns = []
    for _ in range(5):
        breaker.half_open()
        breaker.record_failure()
        cooldowns.append(breaker.cooldown)
    assert cooldowns == [10.0, 20.0, 30.0, 30.0, 30.0]


def test_unauthorized_probe_reopens_with_backoff() -> None:
    breaker = make(threshold=1)
    breaker.trip()
    breaker.half_open()
    breaker.trip()
    assert breaker.is_open
    assert breaker.cooldown == 10.0


def test_half_open_only_from_open() -> None:
    breaker = make()
    breaker.half_open()
    assert breaker.is_closed


def test_listeners_see_every_change() -> None:
    breaker = make(threshold=1)
    seen: list[CircuitState] = []
    breaker.add_listener(seen.append)
    breaker.record_failure()
    breaker.half_open()
    breaker.record_success()
    assert seen == [CircuitState.open, CircuitState.half_open, CircuitState.closed]
