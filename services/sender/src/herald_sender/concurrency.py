"""How many requests a sender keeps in flight: as many as the API answers without queueing.

A fixed limit overloads an API that slows down with its load: four senders of 200 each,
on a machine where the stub answers about 3,000 requests a second, queued its answers
past the 2 s request timeout, and the 183 requests that timed out after the stub had
accepted them were all sent again (make bench). A real API behaves the same.

So the limit follows the API's latency, as Netflix's concurrency-limits (Gradient2) do:
- answers are taken in windows of about one round trip (as many answers as the limit, at
  least ``MIN_SAMPLES``, at most ``MAX_WINDOW`` seconds);
- each window's median latency is compared with a long average of them: within
  ``TOLERANCE`` times it (plus ``SLACK``, so that a very fast API's jitter is no signal),
  the limit grows by its square root a window; above it, it shrinks in proportion;
- a window in which more than ``TIMEOUT_SHARE`` of the requests timed out shrinks it to
  ``TIMEOUT_DECREASE`` of itself (a few hanging requests are no sign of overload, and a
  timed-out request counts as an answer that took the whole timeout);
- until the first window that asks it to shrink, the limit doubles per window (a slow
  start), so a fast API gets its full concurrency within a few round trips;
- a window in which fewer than half of the limit were in flight changes nothing: it says
  nothing about the API, only that there was little to send.

The limit stays between a floor and HERALD_SENDER_CONCURRENCY; equal, it is fixed. A
sustained rise of the API's own latency is taken for overload until the long average has
followed it (about ``LONG_WINDOWS`` windows).
"""

import asyncio
import collections
import math
import time

from herald_common.metrics import SENDER_CONCURRENCY_LIMIT

MIN_SAMPLES = 10
MAX_WINDOW = 1.0
LONG_WINDOWS = 600
TOLERANCE = 1.5
SLACK = 0.02
SMOOTHING = 0.2
TIMEOUT_SHARE = 0.1
TIMEOUT_DECREASE = 0.9


class ConcurrencyLimit:
    """An asyncio semaphore whose size follows the latency of the answers it is told of."""

    def __init__(self, *, floor: int, ceiling: int, initial: int | None = None) -> None:
        self.floor = max(1, min(floor, ceiling))
        self.ceiling = ceiling
        self.limit = float(max(self.floor, min(initial or self.floor, ceiling)))
        self._in_flight = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._samples: list[float] = []
        self._window_started = time.monotonic()
        self._peak = 0
        self._long: float | None = None
        self._starting = True
        self._timeouts = 0
        SENDER_CONCURRENCY_LIMIT.set(self.limit)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *_: object) -> None:
        self.release()

    async def acquire(self) -> None:
        if not self._waiters and self._in_flight < int(self.limit):
            self._enter()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # release() counts it in before waking it
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # woken just as it was cancelled
            raise

    def release(self) -> None:
        self._in_flight -= 1
        self._wake()

    def observe(self, seconds: float) -> None:
        """An answer came after ``seconds``."""
        self._samples.append(seconds)
        if len(self._samples) >= max(MIN_SAMPLES, int(self.limit)) or (
            len(self._samples) >= MIN_SAMPLES
            and time.monotonic() - self._window_started >= MAX_WINDOW
        ):
            self._close_window()

    def timed_out(self, seconds: float) -> None:
        """A request got no answer within ``seconds``: the API is overloaded, or hangs."""
        self._timeouts += 1
        self.observe(seconds)

    def _enter(self) -> None:
        self._in_flight += 1
        if self._in_flight > self._peak:
            self._peak = self._in_flight

    def _wake(self) -> None:
        while self._waiters and self._in_flight < int(self.limit):
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._enter()
                waiter.set_result(None)

    def _close_window(self) -> None:
        samples = sorted(self._samples)
        short = samples[len(samples) // 2]
        busy = self._peak >= self.limit / 2
        overloaded = self._timeouts > TIMEOUT_SHARE * len(samples)
        self._samples = []
        self._window_started = time.monotonic()
        self._peak = self._in_flight
        self._timeouts = 0
        long = short if self._long is None else self._long + (short - self._long) / LONG_WINDOWS
        # Latency came back down after a long stretch of overload: forget it sooner.
        self._long = long * 0.95 if long > 2 * short else long
        if overloaded:
            self._starting = False
            self._set(self.limit * TIMEOUT_DECREASE)
            return
        if not busy:
            return
        gradient = max(0.5, min(1.0, (TOLERANCE * long + SLACK) / short))
        if gradient < 1.0:
            self._starting = False
        if self._starting:
            self._set(self.limit * 2)
            return
        wanted = self.limit * gradient + math.sqrt(self.limit)
        self._set((1 - SMOOTHING) * self.limit + SMOOTHING * wanted)

    def _set(self, limit: float) -> None:
        self.limit = max(float(self.floor), min(float(self.ceiling), limit))
        SENDER_CONCURRENCY_LIMIT.set(self.limit)
        self._wake()
