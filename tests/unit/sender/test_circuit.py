"""The circuit breaker's state machine and its failure-rate window."""

import random

import pytest

from herald_sender.circuit import CircuitBreaker, CircuitState


def make(
    window: int = 3,
    failure_rate: float = 1.0,
    min_calls: int | None = None,
    cooldown: float = 5.0,
    max_cooldown: float = 60.0,
) -> CircuitBreaker:
    return CircuitBreaker(
        window=window,
        failure_rate=failure_rate,
        min_calls=window if min_calls is None else min_calls,
        cooldown=cooldown,
        max_cooldown=max_cooldown,
    )


def test_opens_when_the_window_is_all_failures() -> None:
    breaker = make(window=3)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.is_closed
    breaker.record_failure()
    assert breaker.is_open
    assert breaker.cooldown == 5.0


def test_a_success_in_the_window_keeps_it_closed() -> None:
    breaker = make(window=3)
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure()
    assert breaker.is_closed
    assert (breaker.failures, breaker.calls) == (2, 3)
    breaker.record_failure()  # the success has left the window
    assert breaker.is_open


def test_opens_at_the_failure_rate_not_before() -> None:
    breaker = make(window=10, failure_rate=0.5, min_calls=10)
    for answer in [True, False] * 4 + [False]:
        breaker.record_failure() if answer else breaker.record_success()
    assert breaker.is_closed  # 4 of 9: too few answers yet, and below the rate
    breaker.record_failure()
    assert breaker.is_open  # 5 of 10


def test_needs_min_calls_before_judging() -> None:
    breaker = make(window=100, failure_rate=0.5, min_calls=20)
    for _ in range(19):
        breaker.record_failure()
    assert breaker.is_closed
    breaker.record_failure()
    assert breaker.is_open


def test_min_calls_defaults_to_half_the_window() -> None:
    breaker = CircuitBreaker(window=100, failure_rate=0.5, cooldown=5.0, max_cooldown=60.0)
    assert breaker.min_calls == 50


def test_old_failures_leave_the_window() -> None:
    breaker = make(window=4, failure_rate=0.5, min_calls=4)
    breaker.record_failure()
    for _ in range(3):
        breaker.record_success()
    for _ in range(3):
        breaker.record_success()  # the failure slides out
    assert (breaker.failures, breaker.calls) == (0, 4)


def test_stays_closed_through_a_fifth_of_failures_in_bursts() -> None:
    """The benchmark's faults run: 20 % errors, and hangs that time out in bursts."""
    breaker = CircuitBreaker(window=100, failure_rate=0.5, cooldown=5.0, max_cooldown=60.0)
    draw = random.Random(7)
    for _ in range(20_000):
        if draw.random() < 0.005:
            for _ in range(8):  # a burst of hung requests timing out together
                breaker.record_failure()
        elif draw.random() < 0.2:
            breaker.record_failure()
        else:
            breaker.record_success()
    assert breaker.is_closed


def test_an_outage_opens_it_after_a_good_spell() -> None:
    breaker = CircuitBreaker(window=100, failure_rate=0.5, cooldown=5.0, max_cooldown=60.0)
    for _ in range(100):
        breaker.record_success()
    failures = 0
    while breaker.is_closed:
        breaker.record_failure()
        failures += 1
    assert failures == 50


@pytest.mark.parametrize(("window", "failure_rate"), [(0, 0.5), (10, 0.0), (10, 1.5)])
def test_rejects_nonsense(window: int, failure_rate: float) -> None:
    with pytest.raises(ValueError, match=r"window|failure_rate"):
        CircuitBreaker(window=window, failure_rate=failure_rate, cooldown=1, max_cooldown=1)


def test_trip_opens_at_once() -> None:
    breaker = make(window=10)
    breaker.trip()
    assert breaker.is_open


def test_results_while_open_change_nothing() -> None:
    breaker = make(window=1)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.trip()
    assert breaker.is_open
    assert breaker.cooldown == 5.0


def test_half_open_trial_success_closes_and_resets_cooldown() -> None:
    breaker = make(window=1)
    breaker.record_failure()
    breaker.half_open()
    breaker.record_failure()  # the trial fails: cool-down doubles
    assert breaker.is_open
    assert breaker.cooldown == 10.0
    breaker.half_open()
    assert breaker.is_half_open
    breaker.record_success()
    assert breaker.is_closed
    assert breaker.cooldown == 5.0
    assert (breaker.failures, breaker.calls) == (0, 0)


def test_a_closed_circuit_judges_a_fresh_window() -> None:
    breaker = make(window=3)
    for _ in range(3):
        breaker.record_failure()
    breaker.half_open()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.is_closed  # the failures before it opened no longer count


def test_cooldown_doubles_up_to_its_maximum() -> None:
    breaker = make(window=1, cooldown=5.0, max_cooldown=30.0)
    breaker.record_failure()
    cooldowns = []
    for _ in range(5):
        breaker.half_open()
        breaker.record_failure()
        cooldowns.append(breaker.cooldown)
    assert cooldowns == [10.0, 20.0, 30.0, 30.0, 30.0]


def test_unauthorized_trial_reopens_with_backoff() -> None:
    breaker = make(window=1)
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
    breaker = make(window=1)
    seen: list[CircuitState] = []
    breaker.add_listener(seen.append)
    breaker.record_failure()
    breaker.half_open()
    breaker.record_success()
    assert seen == [CircuitState.open, CircuitState.half_open, CircuitState.closed]
