"""One rate limit on the external API for all senders, whatever their number, and each
mailing's own ``max_rate`` the same way.

GCRA on one PostgreSQL row (``rate_limits``), by the database's clock: a sender leases a
few consecutive request slots at a time, one ``1/rate`` apart, in one statement, and the
row's theoretical arrival time moves on by as many. No two senders ever hold the same
slot, so together they start at most ``rate`` requests a second; none is saved up while
idle (an idle limit does not allow a burst later).

Slots are times on the database's clock, turned into this process's monotonic time
through the sender's measured offset from it (herald_sender.database_clock): reading the
lease's answer as "now" would shift each lease by its commit and round trip, and two
senders' slots would overlap by the difference.

Slots are handed to the waiting requests at their time, in order, not ahead: a request
that must go first (it holds its mailing's slot, which would otherwise go stale) can, and
a slot whose request finds it may not send (its mailing was paused, or its end passed) is
given to the next waiter rather than lost. The next lease is taken just before the slots
in hand run out, so a sender is never committed far ahead on the shared row.

A request takes its slots just before it starts and before it takes a worker slot, so a
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
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from herald_common.faults import FAULTS, describe
from herald_common.metrics import SENDER_RATE_IN_FORCE, SENDER_RATE_WAIT
from herald_sender import repository
from herald_sender.repository import MailingTerms

log = structlog.get_logger()

NAME = "probe"
LEASE_SECONDS = 0.05
# While requests holding their mailing's slot come first, leases are this short: senders'
# leases then interleave finely enough that such a request finds a slot of its own
# sender's within the grace, instead of waiting out another sender's 50 ms.
FINE_LEASE_SECONDS = 0.01
FINE_FOR_SECONDS = 1.0
GRACE_SECONDS = 0.03
# The next lease is taken when the slots in hand cover less than this: a lease's round
# trip is about a millisecond, so the rate never waits for one.
LOOKAHEAD_SECONDS = 0.01
# A slot is handed this much before its time (its request sleeps the rest): one wake of
# the pacer hands out every slot of the next millisecond at high rates.
HAND_EARLY_SECONDS = 0.001
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
        self._name = name
        self._set_limit(limit)
        self._fine_until = 0.0
        # Leased and not yet handed out, in time order.
        self._slots: collections.deque[float] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[float]] = collections.deque()
        self._pacing: asyncio.Task[None] | None = None
        self._leasing: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def limit(self) -> float:
        return self._limit

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def idle(self) -> bool:
        """No request waits for it."""
        return all(waiter.done() for waiter in self._waiters)

    async def start(self) -> None:
        async with self._engine.connect() as connection:
            await repository.ensure_rate_limit(connection, self._name, self._limit)
        self._in_force(self._limit)

    def close(self) -> None:
        """Waiting requests go on at once (they find the sender stopping)."""
        self._closed = True
        for task in (self._pacing, self._leasing):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        now = time.monotonic()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(now)

    async def acquire(self, *, first: bool = False) -> float:
        """Wait for a slot of the shared rate; its time (``time.monotonic()``).

        ``first`` puts the request ahead of those already waiting: it holds another
        limit's slot, which goes stale if it waits its turn here."""
        started = time.monotonic()
        try:
            while not self._closed:
                # Each waiter is woken once, by the slot meant for it: a sender holds up
                # to 3,200 messages, too many to wake on every lease.
                waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
                if first:
                    self._waiters.appendleft(waiter)
                    self._fine_until = started + FINE_FOR_SECONDS
                else:
                    self._waiters.append(waiter)
                if self._pacing is None or self._pacing.done():
                    self._pacing = asyncio.create_task(self._pace())
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

    def give_back(self, slot: float) -> None:
        """A slot its request did not use: the next waiter takes it while it is on time."""
        if self._closed or self.stale(slot):
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(slot)
                return
        self._slots.appendleft(slot)

    def retune(self, limit: float) -> None:
        """A new limit (an operator changed it): slots in hand were leased at the old one."""
        self._set_limit(limit)
        self._slots.clear()

    def _set_limit(self, limit: float) -> None:
        self._limit = limit
        self._max_lease = max(1, int(limit * LEASE_SECONDS))
        self._fine_lease = max(1, int(limit * FINE_LEASE_SECONDS))

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
        self._in_force(rate)
        log.info("rate_limit.lowered", rate=round(rate, 1), retry_after=retry_after)

    def _in_force(self, rate: float) -> None:
        SENDER_RATE_IN_FORCE.set(rate)

    async def _pace(self) -> None:
        """Hand the leased slots to the waiters in order, each at its time."""
        while not self._closed:
            while self._waiters and self._waiters[0].done():
                self._waiters.popleft()  # its request was cancelled
            if not self._waiters:
                return
            now = time.monotonic()
            self._lease_ahead(now)
            if self._closed:
                return
            if not self._slots:
                assert self._leasing is not None
                await asyncio.shield(self._leasing)
                continue
            slot = self._slots[0]
            if slot - now > HAND_EARLY_SECONDS:
                await asyncio.sleep(slot - now - HAND_EARLY_SECONDS)
                continue  # meanwhile a request may have come first, or every one gone
            self._slots.popleft()
            if now - slot <= GRACE_SECONDS:
                self._waiters.popleft().set_result(slot)

    def _lease_ahead(self, now: float) -> None:
        """Start the next lease when the slots in hand are about to run out."""
        if self._leasing is not None and not self._leasing.done():
            return
        wanted = len(self._waiters) - len(self._slots)
        if wanted > 0 and (not self._slots or self._slots[-1] - now < LOOKAHEAD_SECONDS):
            self._follow()
            if self._closed:
                return
            most = self._fine_lease if now < self._fine_until else self._max_lease
            self._leasing = asyncio.create_task(self._lease(min(most, wanted)))

    def _follow(self) -> None:
        """Before each lease: take up a change of the limit."""

    async def _take(self, connection: AsyncConnection, n: int) -> repository.RateSlots:
        return await repository.lease_rate_slots(connection, self._name, self._limit, n, RECOVERY)

    async def _lease(self, n: int) -> None:
        try:
            async with self._engine.connect() as connection:
                slots = await self._take(connection, n)
        except FAULTS as error:
            log.warning(
                "rate_limit.lease_failed", error=describe(error), retry_in=RETRY_LEASE_SECONDS
            )
            await asyncio.sleep(RETRY_LEASE_SECONDS)
            return
        except Exception:
            # A bug, not an outage; the waiters must not hang on it.
            log.exception("rate_limit.lease_error", retry_in=RETRY_LEASE_SECONDS)
            await asyncio.sleep(RETRY_LEASE_SECONDS)
            return
        first = time.monotonic() + (slots.first - self._database_now()).total_seconds()
        self._in_force(1.0 / slots.interval)
        self._slots.extend(first + i * slots.interval for i in range(slots.n))


class MailingRateLimit(SharedRateLimit):
    """A mailing's own ``max_rate``, shared by every sender through its own row.

    Its rate is the mailing's current max_rate, read before each lease: the requests
    waiting for it take up a change at once. The API's 429s lower the global limit,
    which every request also takes, so they are not counted twice here."""

    def __init__(
        self,
        engine: AsyncEngine,
        limit: float,
        database_now: Callable[[], datetime],
        *,
        mailing_id: int,
        current: Callable[[int], MailingTerms | None] | None = None,
    ) -> None:
        super().__init__(engine, limit, database_now, name=f"mailing:{mailing_id}")
        self._mailing_id = mailing_id
        # The watch's current terms; None while they cannot be read (the limit stays).
        self._current = current

    def _follow(self) -> None:
        terms = self._current(self._mailing_id) if self._current is not None else None
        if terms is None:
            return
        if terms.max_rate is None:
            self.close()  # the operator removed it: its waiters go on
        elif terms.max_rate != self._limit:
            self.retune(terms.max_rate)

    def _in_force(self, rate: float) -> None:
        """The gauge is the global limit's."""

    async def _take(self, connection: AsyncConnection, n: int) -> repository.RateSlots:
        return await repository.lease_mailing_rate_slots(connection, self._name, self._limit, n)


class MailingRateLimits:
    """The own limits of the mailings this sender sends, made as first needed."""

    # Idle limits beyond this many are dropped; one costs nothing but its memory.
    KEEP = 256

    def __init__(
        self,
        engine: AsyncEngine,
        database_now: Callable[[], datetime],
        current: Callable[[int], MailingTerms | None] | None = None,
    ) -> None:
        self._engine = engine
        self._database_now = database_now
        # The watch's current terms: each limit follows its mailing's max_rate through them.
        self._current = current
        self._limits: dict[int, MailingRateLimit] = {}

    def of(self, terms: MailingTerms) -> MailingRateLimit | None:
        """The limit of this mailing under these terms, or None when it has none."""
        limit = self._limits.get(terms.id)
        if terms.max_rate is None:
            if limit is not None:
                # The operator removed it: whoever waits for it goes on at once.
                del self._limits[terms.id]
                limit.close()
            return None
        if limit is None or limit.closed:
            if len(self._limits) >= self.KEEP:
                self._forget_idle()
            limit = MailingRateLimit(
                self._engine,
                terms.max_rate,
                self._database_now,
                mailing_id=terms.id,
                current=self._current,
            )
            self._limits[terms.id] = limit
        # A changed max_rate is taken up by the limit itself, before its next lease.
        return limit

    def close(self) -> None:
        for limit in self._limits.values():
            limit.close()
        self._limits.clear()

    def _forget_idle(self) -> None:
        for mailing_id, limit in list(self._limits.items()):
            if limit.idle:
                del self._limits[mailing_id]
