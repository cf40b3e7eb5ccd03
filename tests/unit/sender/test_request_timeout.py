"""The request timeout learned from the external API's answer times."""

import random

from herald_sender.request_timeout import RequestTimeout


def fed(timeout: RequestTimeout, samples: list[float]) -> RequestTimeout:
    for seconds in samples:
        timeout.observe(seconds)
    return timeout


def test_starts_at_the_maximum_until_the_api_has_answered() -> None:
    timeout = fed(RequestTimeout(floor=2, ceiling=10), [0.05] * 49)
    assert timeout.current == 10


def test_a_fast_api_brings_it_down_to_the_floor() -> None:
    timeout = fed(RequestTimeout(floor=2, ceiling=10), [0.05] * 50)
    assert timeout.current == 2


def test_a_slow_api_keeps_it_above_its_answer_times() -> None:
    draw = random.Random(3)
    answers = [draw.uniform(1.0, 2.0) for _ in range(500)]
    timeout = fed(RequestTimeout(floor=2, ceiling=10), answers)
    assert timeout.current == 4 * sorted(answers)[int(0.9 * 499)]
    assert timeout.current > max(answers)


def test_hanging_requests_do_not_move_it() -> None:
    """2 % of requests hang and time out at the current timeout; the rest answer fast."""
    timeout = fed(RequestTimeout(floor=2, ceiling=10), [0.05] * 500)
    draw = random.Random(5)
    for _ in range(5000):
        timeout.observe(timeout.current if draw.random() < 0.02 else 0.05)
    assert timeout.current == 2


def test_when_every_request_times_out_it_grows_back_to_the_maximum() -> None:
    timeout = fed(RequestTimeout(floor=2, ceiling=10), [0.05] * 500)
    seen = []
    for _ in range(1000):
        timeout.observe(timeout.current)  # the API now takes longer than any timeout
        seen.append(timeout.current)
    assert seen[-1] == 10
    assert seen == sorted(seen)


def test_the_floor_never_exceeds_the_ceiling() -> None:
    timeout = fed(RequestTimeout(floor=5, ceiling=3), [0.01] * 100)
    assert timeout.current == 3
