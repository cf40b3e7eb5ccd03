"""Dispatch due messages: claim, publish send commands with confirms, mark queued, commit.

Commands are published before the transaction commits: a crash in between re-sends a
command (the sender dedupes on the ledger) instead of losing one. ``SKIP LOCKED`` lets
any number of dispatchers, in any number of replicas, share the work.
"""

import asyncio
import time
from datetime import UTC, datetime

import structlog
from aio_pika.abc import AbstractExchange
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.broker.connection import publish, to_message
from herald_common.broker.topology import SEND_ROUTING_KEY
from herald_common.contracts import SendMessages
from herald_common.faults import FAULTS, describe
from herald_common.metrics import DUE_UNQUEUED
from herald_scheduler.commands import commands_for
from herald_scheduler.pacing import Backoff, wait_any
from herald_scheduler.repository import ledger

PUBLISH_TIMEOUT = 10.0
# A command's message ids a log line names at most (commands hold 100 by default).
LOGGED_IDS = 1000
GAUGE_INTERVAL = 1.0

log = structlog.get_logger()


class Dispatcher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        send_exchange: AbstractExchange,
        *,
        claim: int,
        batch_size: int,
        interval: float,
        wakeup: asyncio.Event,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._exchange = send_exchange
        self._claim = claim
        self._batch_size = batch_size
        self._interval = interval
        self._wakeup = wakeup
        self._gauge_updated = 0.0

    async def dispatch_once(self) -> int:
        """One claim, publish, mark-queued transaction; the number of messages queued."""
        async with self._sessionmaker.begin() as session:
            claimed = await ledger.claim_due(session, self._claim)
            if not claimed:
                return 0
            commands = commands_for(claimed, self._batch_size)
            await self._publish_all(commands)
            await ledger.mark_queued(session, [message.id for message in claimed])
        self._log_queued(commands)
        return len(claimed)

    async def _publish_all(self, commands: list[SendMessages]) -> None:
        """Publish concurrently and wait for every confirm; the first failure is raised."""
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT), asyncio.TaskGroup() as group:
                for command in commands:
                    group.create_task(self._publish(command))
        except ExceptionGroup as errors:
            # The loop tells outages from bugs by the exception's type, not the group's.
            raise errors.exceptions[0] from errors

    async def _publish(self, command: SendMessages) -> None:
        message = to_message(
            command, message_id=str(command.id), correlation_id=command.correlation_id
        )
        await publish(self._exchange, message, SEND_ROUTING_KEY)

    def _log_queued(self, commands: list[SendMessages]) -> None:
        # One line per command, naming its messages, so that a search by message id
        # finds when it was queued and in which command.
        for command in commands:
            log.info(
                "messages.queued",
                mailing_id=command.mailing_id,
                correlation_id=command.correlation_id,
                command_id=str(command.id),
                count=len(command.messages),
                message_ids=[ref.id for ref in command.messages[:LOGGED_IDS]],
            )

    async def run(self, stopping: asyncio.Event) -> None:
        """Dispatch until ``stopping`` is set; the current transaction always finishes."""
        backoff = Backoff()
        while not stopping.is_set():
            # Cleared before the claim, so a wake-up during it is not lost.
            self._wakeup.clear()
            try:
                queued = await self.dispatch_once()
                await self._update_gauge()
                backoff.reset()
                if queued >= self._claim:
                    continue
                pause = await self._idle_pause()
            except FAULTS as error:
                pause = backoff.next_delay()
                log.warning("dispatch.failed", error=describe(error), retry_in=round(pause, 2))
            except Exception:
                pause = backoff.next_delay()
                log.exception("dispatch.error", retry_in=round(pause, 2))
            await wait_any(self._wakeup, stopping, within=pause)

    async def _idle_pause(self) -> float:
        """Until the next due_at, capped by the interval (rows already due wait the interval:
        they belong to ended mailings the sweeper expires, or to another dispatcher)."""
        async with self._sessionmaker.begin() as session:
            next_due = await ledger.next_due_at(session)
        if next_due is None:
            return self._interval
        until_due = (next_due - datetime.now(UTC)).total_seconds()
        return until_due if 0 < until_due < self._interval else self._interval

    async def _update_gauge(self) -> None:
        if time.monotonic() - self._gauge_updated < GAUGE_INTERVAL:
            return
        async with self._sessionmaker.begin() as session:
            DUE_UNQUEUED.set(await ledger.count_due_unqueued(session))
        self._gauge_updated = time.monotonic()
