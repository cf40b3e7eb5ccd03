"""Which mailings were deleted while their commands are in this sender's hands.

A command is read from the ledger once, when it arrives; its messages may then wait
seconds for a request slot. This watch re-reads the cancellation of every mailing in
hand a few times a second, so that a deleted mailing's sends stop within a second.
"""

import asyncio
import contextlib
from collections import Counter

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_sender.repository import cancelled_mailings

log = structlog.get_logger()


class MailingWatch:
    def __init__(self, engine: AsyncEngine, interval: float = 0.25) -> None:
        self._engine = engine
        self._interval = interval
        self._in_hand: Counter[int] = Counter()
        self._cancelled: frozenset[int] = frozenset()

    def track(self, mailing_id: int) -> None:
        self._in_hand[mailing_id] += 1

    def untrack(self, mailing_id: int) -> None:
        self._in_hand[mailing_id] -= 1
        if self._in_hand[mailing_id] <= 0:
            del self._in_hand[mailing_id]

    def is_cancelled(self, mailing_id: int) -> bool:
        return mailing_id in self._cancelled

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)

    async def refresh(self) -> None:
        if not self._in_hand:
            self._cancelled = frozenset()
            return
        try:
            async with self._engine.connect() as connection:
                self._cancelled = frozenset(
                    await cancelled_mailings(connection, list(self._in_hand))
                )
        except (SQLAlchemyError, OSError) as error:
            # Keep the last answer: the ledger check on the next command still holds.
            log.warning("mailing_watch.unavailable", error=str(error)[:300])
