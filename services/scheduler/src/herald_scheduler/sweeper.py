"""Stop what is still unsent when a mailing ends (expired) or was cancelled or deleted
(cancelled), and give rows whose dispatch lease ran out back to the dispatcher.

Mailing status is derived from its times, so the ledger rows are all there is to mark. A
paused mailing is no exception: its end expires what it left unsent, as always.
A lease runs out when no sender holds the row's command (a sender renews the leases of
what it holds): the command was lost, or its sender died. Leases are released only
while no status event waits in the broker: one of them may say that the row was sent.
"""

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.domain import MessageStatus
from herald_common.metrics import LEASES_EXPIRED, MESSAGES_FINAL
from herald_common.runtime import run_periodically
from herald_scheduler.repository import ledger

SWEEP_BATCH = 10_000

log = structlog.get_logger()


class Sweeper:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        batch: int = SWEEP_BATCH,
        status_backlog: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._batch = batch
        self._status_backlog = status_backlog

    async def release_leases_once(self) -> int:
        """Back to scheduled: rows whose lease ran out; none while status events wait."""
        if self._status_backlog is not None and await self._status_backlog() > 0:
            return 0
        released = 0
        while True:
            async with self._sessionmaker.begin() as session:
                moves = await ledger.release_expired_leases(session, self._batch)
            released += moves.total
            if moves.total < self._batch:
                break
        if released:
            LEASES_EXPIRED.inc(released)
            log.warning("messages.lease_expired", count=released)
        return released

    async def sweep_once(self) -> ledger.Moves:
        """Stop every unsent row of ended or deleted mailings, one transaction per batch."""
        total = ledger.Moves()
        while True:
            async with self._sessionmaker.begin() as session:
                moves = await ledger.stop_finished_mailings(session, self._batch)
            total += moves
            for status, count in moves.finals.items():
                MESSAGES_FINAL.labels(status=status.value).inc(count)
            if moves.total < self._batch:
                break
        if total.count(MessageStatus.expired):
            log.info("mailing.expired", count=total.count(MessageStatus.expired))
        if total.count(MessageStatus.cancelled):
            log.info("mailing.cancelled", count=total.count(MessageStatus.cancelled))
        return total

    async def run(self, stopping: asyncio.Event, interval: float) -> None:
        async def step() -> None:
            await self.sweep_once()
            await self.release_leases_once()

        await run_periodically(step, stopping, interval, failed="sweep.failed", error="sweep.error")
