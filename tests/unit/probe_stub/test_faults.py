"""Fault decisions: their order, the token bucket, latency bounds, and seeded replay."""

import random

import pytest

from herald_probe_stub.config import StubConfig
from herald_probe_stub.faults import (
    ERROR_STATUSES,
    MALFORMED_BODIES,
    Fault,
    FaultInjector,
    TokenBucket,
)


def _injector(now: float = 0.0, **changes: object) -> FaultInjector:
    return FaultInjector(StubConfig().updated(changes, now), random.Random(1), now)


def test_no_fault_is_drawn_when_every_rate_is_zero() -> None:
    rng = random.Random(1)
    injector = FaultInjector(StubConfig(), rng, 0.0)
    state = rng.getstate()

    assert [injector.decide(float(t)) for t in range(100)] == [None] * 100
    assert rng.getstate() == state  # the common case costs no random draws


@pytest.mark.parametrize(
    ("rates", "expected"),
    [
        ({"hang_rate": 1.0, "reset_rate": 1.0, "error_rate": 1.0}, Fault.HANG),
        ({"reset_rate": 1.0, "error_rate": 1.0, "malformed_rate": 1.0}, Fault.RESET),
        ({"error_rate": 1.0, "malformed_rate": 1.0}, Fault.ERROR),
        ({"malformed_rate": 1.0}, Fault.MALFORMED),
    ],
)
def test_faults_apply_in_their_order(rates: dict[str, float], expected: Fault) -> None:
    assert _injector(**rates).decide(0.0) is expected


def test_an_outage_comes_before_every_other_fault() -> None:
    injector = _injector(outages=[[0, 10]], rate_limit=1, hang_rate=1.0)

    assert injector.decide(5.0) is Fault.OUTAGE
    assert injector.decide(10.0) is Fault.HANG


def test_a_rate_draws_roughly_its_share() -> None:
    injector = _injector(error_rate=0.3)

    errors = sum(injector.decide(0.0) is Fault.ERROR for _ in range(10_000))

    assert 2_700 < errors < 3_300


def test_the_same_seed_replays_the_same_faults() -> None:
    changes = {"error_rate": 0.2, "reset_rate": 0.1, "malformed_rate": 0.2}
    one, two = _injector(**changes), _injector(**changes)

    drawn = [one.decide(0.0) for _ in range(200)]

    assert drawn == [two.decide(0.0) for _ in range(200)]
    assert {Fault.ERROR, Fault.RESET, Fault.MALFORMED, None} == set(drawn)


def test_the_token_bucket_admits_its_rate_after_a_burst_of_one_second() -> None:
    bucket = TokenBucket(rate=10, now=0.0)

    assert sum(bucket.take(0.0) for _ in range(15)) == 10
    assert not bucket.take(0.05)
    assert bucket.take(0.1)  # one token refilled after 1/10 s
    assert not bucket.take(0.1)


def test_a_rate_below_one_per_second_still_admits_one_request() -> None:
    bucket = TokenBucket(rate=0.5, now=0.0)

    assert bucket.take(0.0)
    assert not bucket.take(1.0)
    assert bucket.take(2.0)


def test_rate_limiting_answers_rate_limited_over_the_rate() -> None:
    injector = _injector(rate_limit=2)

    assert [injector.decide(0.0) for _ in range(3)] == [None, None, Fault.RATE_LIMITED]


def test_reconfiguring_the_rate_limit_refills_the_bucket() -> None:
    injector = _injector(rate_limit=1)
    assert injector.decide(0.0) is None
    assert injector.decide(0.0) is Fault.RATE_LIMITED

    injector.reconfigure(injector.config.updated({"rate_limit": 0}, 0.0), 0.0)

    assert injector.decide(0.0) is None
    assert injector.decide(0.0) is None


def test_latency_stays_within_its_jitter_and_never_goes_negative() -> None:
    injector = _injector(latency_ms=100, jitter_ms=30)
    delays = [injector.latency() for _ in range(1_000)]

    assert all(0.07 <= delay <= 0.13 for delay in delays)
    assert max(delays) - min(delays) > 0.05
    assert all(_injector(latency_ms=5, jitter_ms=50).latency() >= 0 for _ in range(100))
    assert _injector(latency_ms=250).latency() == 0.25


def test_latency_grows_with_the_requests_in_flight() -> None:
    injector = _injector(latency_ms=20, load_latency_ms=2)

    assert injector.latency(0) == 0.02
    assert injector.latency(100) == 0.22


def test_errors_and_malformed_bodies_come_from_their_lists() -> None:
    injector = _injector()

    assert {injector.error_status() for _ in range(200)} == set(ERROR_STATUSES)
    assert {injector.malformed_body() for _ in range(200)} == set(MALFORMED_BODIES)
