"""One rate limit on the external API for all senders, whatever their number.

GCRA on one PostgreSQL row (``rate_limits``), by the database's clock: a sender leases a
few consecutive request slots at a time, one ``1/rate`` apart, in one statement, and the
row's theoretical arrival time moves on by as many. No two senders ever hold the same
slot, so together they start at most ``rate`` requests a second; none is saved up while
idle (an idle limit does not allow a burst later).

Slots are times on the database's clock, turned into this process's monotonic time
through the sender's measured offset from it (herald_sender.database_clock): reading the
lease's answer as "now" would shift each lease by its commit and round trip, and two
senders' slots would overlap by the difference.

A request takes its slot just before it starts and before it takes a worker slot, so a
request waiting for the rate holds no worker. A slot not used within ``grace`` of its
time (its request then waited for a worker) is dropped and the request takes a new one:
late requests never bunch into a burst above the rate.

A lease is at most 50 ms of the rate (at least 1 slot), and at most as many slots as
requests wait, so slots that go unused when a sender stops are few.

With the limit set, a 429 from the API lowers the rate in force for every sender: by
``DECREASE`` (at most once a second), never below ``FLOOR`` of the limit, and pushes the
next slot back by the answer's Retry-After. Once no 429 came for ``RECOVERY`` seconds,
each lease raises it by 1 % of the limit, back to the limit.
"""

import asyncio
import collections
import time
from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.faults import FAULTS, describe
from herald_common.metrics import SENDER_RATE_IN_FORCE, SENDER_RATE_WAIT
from herald_sender import repository

log = structlog.get_logger()

NAME = "probe"
LEASE_SECONDS = 0.05
GRACE_SECONDS = 0.03
DECREASE = 0.8
FLOOR = 0.05
RECOVERY = 5.0
RETRY_LEASE_SECONDS = 1.0


class SharedRateLimit:
    def __init__(
        self,
        engine: AsyncEngine,
        limit: float,
        database_now: Callable[[], datetime],
        *,
        name: str = NAME,
    ) -> None:
        self._engine = engine
        self._database_now = database_now
        self._limit = limit
        self._name = name
        self._max_lease = max(1, int(limit * LEASE_SECONDS))
        self._slots: collections.deque[float] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[float]] = collections.deque()
        self._leasing: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        async with self._engine.connect() as connection:
            await repository.ensure_rate_limit(connection, self._name, self._limit)
        SENDER_RATE_IN_FORCE.set(self._limit)

    def close(self) -> None:
        """Waiting requests go on at once (they find the sender stopping)."""
        self._closed = True
        if self._leasing is not None:
            self._leasing.cancel()
        now = time.monotonic()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(now)

    async def acquire(self) -> float:
        """Wait for a slot of the shared rate; its time (``time.monotonic()``)."""
        started = time.monotonic()
        try:
            while not self._closed:
                if self._slots:
                    slot = self._slots.popleft()
                else:
                    # Each waiter is woken once, by the lease that hands it its slot: a
                    # sender holds up to 3,200 messages, and waking them all on every
                    # lease tripled its CPU per message at a binding limit (make bench).
                    waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
                    self._waiters.append(waiter)
                    if self._leasing is None or self._leasing.done():
                        self._leasing = asyncio.create_task(self._lease())
                    slot = await waiter
                delay = slot - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif self.stale(slot):
                    continue
                return slot
            return time.monotonic()
        finally:
            SENDER_RATE_WAIT.observe(time.monotonic() - started)

    def stale(self, slot: float) -> bool:
        """Whether a request starting now would be too late for this slot."""
        return time.monotonic() - slot > GRACE_SECONDS

    async def throttled(self, retry_after: float | None) -> None:
        """The API answered 429: slow every sender down."""
        try:
            async with self._engine.connect() as connection:
                rate = await repository.throttle(
                    connection,
                    self._name,
                    floor=self._limit * FLOOR,
                    decrease=DECREASE,
                    pause=retry_after or 0.0,
                )
        except FAULTS as error:
            log.warning("rate_limit.throttle_failed", error=describe(error))
            return
        self._slots.clear()  # leased at the old rate
        SENDER_RATE_IN_FORCE.set(rate)
        log.info("rate_limit.lowered", rate=round(rate, 1), retry_after=retry_after)

    async def _lease(self) -> None:
        """Lease slots and hand them to the waiters in order, while any wait."""
        while self._waiters and not self._closed:
            n = max(1, min(self._max_lease, len(self._waiters)))
            try:
                async with self._engine.connect() as connection:
                    slots = await repository.lease_rate_slots(
                        connection, self._name, self._limit, n, RECOVERY
                    )
            except FAULTS as error:
                log.warning(
                    "rate_limit.lease_failed",
                    error=describe(error),
                    retry_in=RETRY_LEASE_SECONDS,
                )
                await asyncio.sleep(RETRY_LEASE_SECONDS)
                continue
            first = time.monotonic() + (slots.first - self._database_now()).total_seconds()
            SENDER_RATE_IN_FORCE.set(1.0 / slots.interval)
            for i in range(slots.n):
                slot = first + i * slots.interval
                while self._waiters and self._waiters[0].done():
                    self._waiters.popleft()  # its request was cancelled
                if self._waiters:
                    self._waiters.popleft().set_result(slot)
                else:
                    self._slots.append(slot)
