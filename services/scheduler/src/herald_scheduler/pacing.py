"""How the scheduler's loops wait: for a wake-up, a stop or a timeout; backing off after faults."""

import asyncio
import contextlib
import random
from dataclasses import dataclass, field


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
