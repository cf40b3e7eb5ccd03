"""Waiting on events with a timeout, and capped backoff."""

import asyncio

from herald_common.runtime import Backoff, wait_any


async def test_wait_any_returns_when_one_event_is_set() -> None:
    first, second = asyncio.Event(), asyncio.Event()
    asyncio.get_running_loop().call_later(0.01, second.set)
    assert await wait_any(first, second, within=5) is True


async def test_wait_any_times_out_without_an_event() -> None:
    assert await wait_any(asyncio.Event(), within=0.01) is False


async def test_wait_any_with_an_event_already_set_does_not_wait() -> None:
    ready = asyncio.Event()
    ready.set()
    assert await wait_any(ready, within=None) is True


def test_backoff_grows_to_its_cap_and_resets() -> None:
    backoff = Backoff(initial=0.1, cap=1.0)
    delays = [backoff.next_delay() for _ in range(8)]
    assert delays[0] < 0.2
    assert delays[1] > delays[0]
    assert max(delays) <= 1.2  # cap plus jitter
    backoff.reset()
    assert backoff.next_delay() < 0.2
