"""The database's clock, as this sender reads it.

``due_at``, the dispatcher's claims and the sweeper use PostgreSQL's clock; a sender
judges a message's end and its client's window by its own. A sender whose clock runs
behind would start requests after the end; one that runs ahead would expire messages
early or miss the first minutes of a window. This clock reads the database's time at
start and every minute, and tells the local time plus the measured offset.

Each reading is one NTP-style sample: the database's ``clock_timestamp()`` against the
midpoint of the local times just before and after the query, so that the round trip
cancels out (half of it bounds the error). Of a few samples over one connection, the one
with the shortest round trip is kept.
"""

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.faults import FAULTS, describe
from herald_common.metrics import SENDER_CLOCK_OFFSET

log = structlog.get_logger()

_DATABASE_TIME = text("SELECT clock_timestamp()")
# An offset this large is worth a warning: the machine's time service is off.
_WARN_OFFSET = timedelta(seconds=1)


def _local_now() -> datetime:
    return datetime.now(UTC)


class DatabaseClock:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        interval: float = 60.0,
        samples: int = 3,
        local_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._engine = engine
        self._interval = interval
        self._samples = samples
        self._local_clock = local_clock or _local_now
        self.offset = timedelta(0)

    def now(self) -> datetime:
        """The database's time now, read from the local clock."""
        return self._local_clock() + self.offset

    async def measure(self) -> timedelta:
        """Read the offset again; the database's outages propagate."""
        best: tuple[timedelta, timedelta] | None = None  # round trip, offset
        async with self._engine.connect() as connection:
            for _ in range(self._samples):
                before = self._local_clock()
                database_now: datetime = (await connection.execute(_DATABASE_TIME)).scalar_one()
                after = self._local_clock()
                round_trip = after - before
                offset = database_now - (before + round_trip / 2)
                if best is None or round_trip < best[0]:
                    best = (round_trip, offset)
        assert best is not None
        round_trip, self.offset = best
        SENDER_CLOCK_OFFSET.set(self.offset.total_seconds())
        report = log.warning if abs(self.offset) >= _WARN_OFFSET else log.debug
        report(
            "clock.offset",
            offset_s=round(self.offset.total_seconds(), 4),
            round_trip_ms=round(round_trip.total_seconds() * 1000, 2),
        )
        return self.offset

    async def measure_or_keep(self) -> None:
        """Measure, or keep the last offset while the database is unreachable."""
        try:
            await self.measure()
        except FAULTS as error:
            log.warning(
                "clock.unmeasured", error=describe(error), offset_s=self.offset.total_seconds()
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Measure every ``interval`` seconds until ``stop``."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
            if not stop.is_set():
                await self.measure_or_keep()
