"""The current terms of every mailing whose commands are in this sender's hands.

A command's messages may wait seconds for a request slot, or for a retry; meanwhile
the mailing may be changed (its start, end, window, text or filter), paused, cancelled or
deleted. This
watch re-reads the terms of every mailing in hand a few times a second, and every
request is judged by them right before it starts. Terms older than ``max_age`` are not
trusted (the database is unreachable): no request starts on them, so that no request
starts under terms changed more than a second ago.
"""

import asyncio
import contextlib
import time
from collections import Counter

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.faults import FAULTS, describe
from herald_sender.repository import MailingTerms, mailing_terms

log = structlog.get_logger()


class MailingWatch:
    def __init__(self, engine: AsyncEngine, interval: float = 0.25, max_age: float = 0.75) -> None:
        self._engine = engine
        self._interval = interval
        self._max_age = max_age
        self._in_hand: Counter[int] = Counter()
        self._terms: dict[int, MailingTerms] = {}
        # When each mailing's terms were last read (monotonic, at the read's start).
        self._read_at: dict[int, float] = {}

    def track(self, mailing_id: int) -> None:
        self._in_hand[mailing_id] += 1

    def untrack(self, mailing_id: int) -> None:
        self._in_hand[mailing_id] -= 1
        if self._in_hand[mailing_id] <= 0:
            del self._in_hand[mailing_id]
            self._terms.pop(mailing_id, None)
            self._read_at.pop(mailing_id, None)

    def offer(self, terms: MailingTerms, read_at: float) -> None:
        """Terms read elsewhere (with a command's messages); kept if no newer are known."""
        known = self._terms.get(terms.id)
        if known is None or terms.revision >= known.revision:
            self._terms[terms.id] = terms
        self._read_at[terms.id] = max(read_at, self._read_at.get(terms.id, read_at))

    def current(self, mailing_id: int) -> MailingTerms | None:
        """The mailing's terms if read within ``max_age``; None when they cannot be trusted."""
        read_at = self._read_at.get(mailing_id)
        if read_at is None or time.monotonic() - read_at > self._max_age:
            return None
        return self._terms.get(mailing_id)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)

    async def refresh(self) -> None:
        if not self._in_hand:
            return
        ids = list(self._in_hand)
        started = time.monotonic()
        try:
            async with self._engine.connect() as connection:
                fresh = await mailing_terms(connection, ids)
        except FAULTS as error:
            # Kept, but ageing: past max_age no request starts on them.
            log.warning("mailing_watch.unavailable", error=describe(error))
            return
        for terms in fresh:
            if terms.id in self._in_hand:
                self.offer(terms, started)
