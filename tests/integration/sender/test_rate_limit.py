"""The shared rate limit on real PostgreSQL: several limiters, as several senders would
hold, never start more than the rate between them; a 429 slows all of them down; a
mailing's own limit holds the same way."""

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.stats import busiest_window
from herald_common.db.engine import create_engine
from herald_common.settings import HeraldSettings
from herald_sender import rate_limit
from herald_sender.database_clock import DatabaseClock
from herald_sender.rate_limit import MailingRateLimit, MailingRateLimits, SharedRateLimit
from tests.unit.sender.fakes import terms

RATE = 200.0


@pytest.fixture
async def engines(
    clean_db: AsyncEngine, settings: HeraldSettings
) -> AsyncIterator[list[AsyncEngine]]:
    """Four engines: four senders' own connection pools."""
    made = [create_engine(settings, pool_size=2) for _ in range(4)]
    yield made
    for engine in made:
        await engine.dispose()


async def limiters(engines: list[AsyncEngine], limit: float = RATE) -> list[SharedRateLimit]:
    made = []
    for engine in engines:
        clock = DatabaseClock(engine)
        await clock.measure_or_keep()
        limiter = SharedRateLimit(engine, limit, clock.now)
        await limiter.start()
        made.append(limiter)
    return made


async def take(limiter: SharedRateLimit, count: int, concurrency: int) -> list[float]:
    """``count`` slots through ``concurrency`` waiters; when each was granted."""
    granted: list[float] = []
    remaining = count

    async def waiter() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await limiter.acquire()
            granted.append(time.monotonic())

    await asyncio.gather(*(waiter() for _ in range(concurrency)))
    return granted


async def test_four_limiters_together_start_no_more_than_the_rate(
    engines: list[AsyncEngine],
) -> None:
    shared = await limiters(engines)

    granted = await asyncio.gather(*(take(limiter, 150, 40) for limiter in shared))

    moments = [moment for one in granted for moment in one]
    assert len(moments) == 600
    assert busiest_window(moments) <= RATE * 1.05
    # And they use the rate while there is a backlog (the first second has no history).
    span = max(moments) - min(moments)
    assert len(moments) / span >= RATE * 0.9, f"{len(moments)} slots in {span:.2f} s"


async def test_an_idle_limit_saves_up_no_burst(engines: list[AsyncEngine]) -> None:
    (limiter,) = await limiters(engines[:1])
    await take(limiter, 10, 10)
    await asyncio.sleep(1.0)  # idle: a naive bucket would now hold a second's worth

    moments = await take(limiter, 100, 100)

    assert busiest_window(moments) <= RATE * 1.05


async def test_a_429_lowers_the_rate_for_every_sender_once_a_second(
    engines: list[AsyncEngine],
) -> None:
    first, second = await limiters(engines[:2])

    await first.throttled(retry_after=None)
    await second.throttled(retry_after=None)  # the same burst of 429s, seen by another

    async with engines[0].connect() as connection:
        rate = (await connection.execute(text("SELECT rate FROM rate_limits"))).scalar_one()
    assert rate == pytest.approx(RATE * rate_limit.DECREASE)
    moments = await take(second, 60, 30)
    assert busiest_window(moments) <= RATE * rate_limit.DECREASE * 1.05


async def test_the_rate_never_falls_below_its_floor_and_recovers_after_the_429s_stop(
    engines: list[AsyncEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    (limiter,) = await limiters(engines[:1])
    async with engines[0].connect() as connection:
        await connection.execute(
            text("UPDATE rate_limits SET rate = 1, throttled_at = now() - interval '1 hour'")
        )
        await connection.commit()
    await limiter.throttled(retry_after=None)
    async with engines[0].connect() as connection:
        floor = (await connection.execute(text("SELECT rate FROM rate_limits"))).scalar_one()
    assert floor == pytest.approx(RATE * rate_limit.FLOOR)

    monkeypatch.setattr(rate_limit, "RECOVERY", 0.0)
    await take(limiter, 30, 10)

    async with engines[0].connect() as connection:
        raised = (await connection.execute(text("SELECT rate FROM rate_limits"))).scalar_one()
    assert raised > floor


async def test_a_retry_after_pushes_every_senders_next_slot_back(
    engines: list[AsyncEngine],
) -> None:
    first, second = await limiters(engines[:2])

    await first.throttled(retry_after=1.0)
    started = time.monotonic()
    await second.acquire()

    assert time.monotonic() - started >= 0.9


async def test_a_slot_its_request_was_too_late_for_is_stale() -> None:
    limiter = SharedRateLimit(engine=None, limit=RATE, database_now=None)  # type: ignore[arg-type]

    assert not limiter.stale(time.monotonic())
    assert limiter.stale(time.monotonic() - rate_limit.GRACE_SECONDS * 2)


async def test_a_request_that_comes_first_skips_the_queue(engines: list[AsyncEngine]) -> None:
    (limiter,) = await limiters(engines[:1])
    backlog = asyncio.create_task(take(limiter, 200, 200))  # a second of the rate
    await asyncio.sleep(0.1)

    started = time.monotonic()
    await limiter.acquire(first=True)
    waited = time.monotonic() - started
    await backlog

    # Its turn in the queue would have been about 0.9 s away.
    assert waited < 0.1, f"waited {waited:.3f} s"


async def test_a_slot_given_back_goes_to_the_next_waiter_at_once(
    engines: list[AsyncEngine],
) -> None:
    (limiter,) = await limiters(engines[:1], limit=2.0)  # one slot every 0.5 s
    slot = await limiter.acquire()
    waiting = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.01)

    limiter.give_back(slot)

    assert await asyncio.wait_for(waiting, timeout=0.1) == slot


async def test_a_sender_leases_no_further_ahead_than_it_sends(
    engines: list[AsyncEngine],
) -> None:
    """A paused mailing's waiting requests, or a stopping sender, cost the others little:
    the row is never committed to one sender's whole backlog."""
    (limiter,) = await limiters(engines[:1])
    backlog = asyncio.create_task(take(limiter, 400, 400))  # two seconds of the rate
    await asyncio.sleep(0.3)

    async with engines[0].connect() as connection:
        ahead = (
            await connection.execute(
                text("SELECT extract(epoch FROM tat - now()) FROM rate_limits")
            )
        ).scalar_one()
    backlog.cancel()

    assert ahead < rate_limit.LEASE_SECONDS * 2, f"leased {ahead:.2f} s ahead"


async def test_a_mailings_own_limit_holds_across_senders_and_follows_its_changes(
    engines: list[AsyncEngine],
) -> None:
    own = []
    for engine in engines:
        clock = DatabaseClock(engine)
        await clock.measure_or_keep()
        own.append(MailingRateLimit(engine, 50.0, clock.now, mailing_id=1))

    granted = await asyncio.gather(*(take(limiter, 40, 20) for limiter in own))

    moments = [moment for one in granted for moment in one]
    assert busiest_window(moments) <= 50 * 1.05
    span = max(moments) - min(moments)
    assert len(moments) / span >= 50 * 0.9, f"{len(moments)} slots in {span:.2f} s"

    for limiter in own:
        limiter.retune(100.0)
    granted = await asyncio.gather(*(take(limiter, 60, 20) for limiter in own))

    moments = [moment for one in granted for moment in one]
    assert busiest_window(moments) <= 100 * 1.05
    assert len(moments) / (max(moments) - min(moments)) >= 100 * 0.9
    async with engines[0].connect() as connection:
        rate = (
            await connection.execute(text("SELECT rate FROM rate_limits WHERE name = 'mailing:1'"))
        ).scalar_one()
    assert rate == 100.0


async def test_a_mailing_whose_limit_is_removed_lets_its_waiters_go(
    engines: list[AsyncEngine],
) -> None:
    clock = DatabaseClock(engines[0])
    await clock.measure_or_keep()
    mailings = MailingRateLimits(engines[0], clock.now)
    limited = terms(max_rate=1.0)
    limit = mailings.of(limited)
    assert limit is not None
    await limit.acquire()
    waiting = asyncio.create_task(limit.acquire())  # its slot is a second away
    await asyncio.sleep(0.05)
    assert not waiting.done()

    assert mailings.of(dataclasses.replace(limited, max_rate=None)) is None

    await asyncio.wait_for(waiting, timeout=0.1)
    assert mailings.of(limited) is not limit
