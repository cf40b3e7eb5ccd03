"""Stop what is still unsent when a mailing ends (expired) or was deleted (cancelled).

Mailing status is derived from its times, so the ledger rows are all there is to mark.
"""

import asyncio

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.domain import MessageStatus
from herald_common.faults import FAULTS, describe
from herald_common.metrics import MESSAGES_FINAL
from herald_scheduler.pacing import Backoff, wait_any
from herald_scheduler.repository import ledger

SWEEP_BATCH = 10_000

log = structlog.get_logger()


class Sweeper:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, batch: int = SWEEP_BATCH
    ) -> None:
        self._sessionmaker = sessionmaker
        self._batch = batch

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
        backoff = Backoff()
        while not stopping.is_set():
            pause = interval
            try:
                await self.sweep_once()
                backoff.reset()
            except FAULTS as error:
                pause = max(interval, backoff.next_delay())
                log.warning("sweep.failed", error=describe(error), retry_in=round(pause, 2))
            except Exception:
                pause = max(interval, backoff.next_delay())
                log.exception("sweep.error", retry_in=round(pause, 2))
            await wait_any(stopping, within=pause)
