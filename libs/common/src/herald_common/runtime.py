"""How herald's worker loops run: wait for a wake-up, a stop or a timeout; back off after
faults; and, for the loops that do one step every few seconds, the whole loop."""

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from herald_common.faults import FAULTS, describe

log = structlog.get_logger()


async def wait_any(*events: asyncio.Event, within: float | None) -> bool:
    """Wait until one of the events is set or ``within`` seconds pass; True if one was set."""
    if any(event.is_set() for event in events):
        return True
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        for waiter in waiters:
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
    return bool(done)


@dataclass
class Backoff:
    """Capped exponential delays with jitter, so replicas do not retry in lockstep."""

    initial: float = 0.2
    cap: float = 5.0
    _failures: int = field(default=0, init=False)

    def next_delay(self) -> float:
        delay = min(self.cap, self.initial * 2.0**self._failures)
        self._failures = min(self._failures + 1, 30)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._failures = 0


async def run_periodically(
    step: Callable[[], Awaitable[float | None]],
    stopping: asyncio.Event,
    interval: float,
    *,
    failed: str,
    error: str,
) -> None:
    """Run ``step`` every ``interval`` seconds until ``stopping`` is set.

    An outage (herald_common.faults) is logged at warning as ``failed``, anything else
    with its traceback as ``error``; both back off, jittered and capped, before the next
    try, and the loop goes on. ``step`` may return a shorter pause (0: more is due now).
    """
    backoff = Backoff()
    while not stopping.is_set():
        pause = interval
        try:
            sooner = await step()
            if sooner is not None:
                pause = min(pause, sooner)
            backoff.reset()
        except FAULTS as exc:
            pause = max(interval, backoff.next_delay())
            log.warning(failed, error=describe(exc), retry_in=round(pause, 2))
        except Exception:
            pause = max(interval, backoff.next_delay())
            log.exception(error, retry_in=round(pause, 2))
        await wait_any(stopping, within=pause)
