"""The adaptive concurrency limit against simulated APIs: a steady latency lets it grow to
the ceiling, a latency that rises with load holds it where the API does not queue, and
timeouts shrink it; as a semaphore it never lets more in than the limit."""

import asyncio
import random
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from herald_sender import concurrency
from herald_sender.concurrency import ConcurrencyLimit
from herald_sender.settings import SenderSettings

TIMEOUT = 2.0


async def run(
    limit: ConcurrencyLimit,
    latency_at: Callable[[int], float],
    *,
    requests: int,
    workers: int = 300,
) -> list[float]:
    """``requests`` through ``workers``; each answer's latency as the API gives it at the
    number in flight when it started. The latencies seen."""
    seen: list[float] = []
    remaining = requests

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            async with limit:
                latency = latency_at(limit.in_flight)
                await asyncio.sleep(0)
                if latency >= TIMEOUT:
                    limit.timed_out(TIMEOUT)
                else:
                    limit.observe(latency)
                seen.append(latency)

    await asyncio.gather(*(worker() for _ in range(workers)))
    return seen


async def test_a_steady_latency_lets_it_grow_to_the_ceiling_within_a_few_windows() -> None:
    limit = ConcurrencyLimit(floor=8, ceiling=200)

    await run(limit, lambda _: 0.05, requests=2_000)

    assert limit.limit == 200


async def test_a_latency_that_rises_with_load_holds_it_where_the_api_does_not_queue() -> None:
    limit = ConcurrencyLimit(floor=4, ceiling=200)

    def latency_at(in_flight: int) -> float:
        return 0.020 + 0.002 * in_flight  # 420 ms at the ceiling

    seen = await run(limit, latency_at, requests=20_000)

    # A fixed limit of 200 would see 420 ms; the long average it compares with creeps up
    # over about LONG_WINDOWS windows (here some 300 went by), so not all the way down.
    assert limit.limit < 0.4 * 200, limit.limit
    settled = sorted(seen[-2_000:])
    assert settled[len(settled) // 2] < 0.4 * latency_at(200)


async def test_timeouts_shrink_it_and_a_few_hangs_do_not() -> None:
    def hanging(share: float) -> Callable[[int], float]:
        draw = random.Random(1).random
        return lambda _: 3.0 if draw() < share else 0.05

    limit = ConcurrencyLimit(floor=8, ceiling=200, initial=200)
    await run(limit, hanging(0.2), requests=3_000)
    assert limit.limit < 100

    steady = ConcurrencyLimit(floor=8, ceiling=200, initial=200)
    await run(steady, hanging(0.02), requests=3_000)
    assert steady.limit == 200


async def test_little_to_send_says_nothing_about_the_api() -> None:
    limit = ConcurrencyLimit(floor=8, ceiling=200, initial=100)

    await run(limit, lambda _: 1.5, requests=500, workers=5)

    assert limit.limit == 100


async def test_never_more_in_flight_than_the_limit() -> None:
    limit = ConcurrencyLimit(floor=3, ceiling=3)
    peak = 0

    async def request() -> None:
        nonlocal peak
        async with limit:
            peak = max(peak, limit.in_flight)
            await asyncio.sleep(0.001)

    await asyncio.gather(*(request() for _ in range(50)))

    assert peak == 3
    assert limit.in_flight == 0


async def test_a_waiter_cancelled_while_waiting_takes_no_place() -> None:
    limit = ConcurrencyLimit(floor=1, ceiling=1)
    await limit.acquire()
    waiting = asyncio.create_task(limit.acquire())
    await asyncio.sleep(0)

    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    limit.release()

    assert limit.in_flight == 0
    await asyncio.wait_for(limit.acquire(), timeout=0.1)
    assert limit.in_flight == 1


def test_the_floor_never_exceeds_the_ceiling() -> None:
    limit = ConcurrencyLimit(floor=50, ceiling=10)
    assert limit.floor == limit.ceiling == limit.limit == 10
    assert concurrency.TOLERANCE > 1


def test_a_floor_set_above_the_ceiling_is_refused_and_the_default_gives_way() -> None:
    with pytest.raises(ValidationError, match="HERALD_SENDER_MIN_CONCURRENCY must not exceed"):
        SenderSettings(sender_concurrency=4, sender_min_concurrency=10)
    assert SenderSettings(sender_concurrency=2).sender_concurrency == 2
