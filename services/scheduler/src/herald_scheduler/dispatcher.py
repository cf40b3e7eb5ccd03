"""Dispatch due messages: claim, mark queued under a dispatch token, commit, then publish.

The rows are committed before their commands are published, each row carrying the
token of its command and a lease. A command published twice, or one that turns up
after its rows were dispatched again, finds another token on them and sends nothing,
so no fault of the scheduler sends a message twice. A command that is never published
(the broker gone, a crash before publishing) is not lost either: its rows go back to
``scheduled`` at once when the dispatcher sees the failure, or when the lease runs out
(see ``herald_scheduler.sweeper``). ``SKIP LOCKED`` lets any number of dispatchers, in
any number of replicas, share the work.
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
from herald_common.runtime import Backoff, wait_any
from herald_scheduler.commands import commands_for
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
        lease_seconds: float = ledger.DEFAULT_LEASE_SECONDS,
        max_queued: int = 20_000,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._exchange = send_exchange
        self._claim = claim
        self._lease_seconds = lease_seconds
        self._max_queued = max_queued
        self._batch_size = batch_size
        self._interval = interval
        self._wakeup = wakeup
        self._gauge_updated = 0.0

    async def dispatch_once(self) -> int:
        """Claim and commit a dispatch, then publish it; the number of messages queued."""
        async with self._sessionmaker.begin() as session:
            room = self._max_queued - await ledger.count_queued(session)
            if room <= 0:
                return 0
            claimed = await ledger.claim_due(session, min(self._claim, room))
            if not claimed:
                return 0
            commands = commands_for(claimed, self._batch_size)
            dispatch = await ledger.mark_queued(session, commands, self._lease_seconds)
        unpublished, error = await self._publish_all(commands)
        failed = {id(command) for command in unpublished}
        self._log_queued([command for command in commands if id(command) not in failed])
        if error is not None:
            await self._release(unpublished, dispatch.lease_until)
            # Raised for the loop's backoff: the broker is likely down.
            raise error
        return len(claimed)

    async def _publish_all(
        self, commands: list[SendMessages]
    ) -> tuple[list[SendMessages], BaseException | None]:
        """Publish concurrently and wait for every confirm; those not confirmed, and why."""
        tasks = [asyncio.ensure_future(self._publish(command)) for command in commands]
        done, pending = await asyncio.wait(tasks, timeout=PUBLISH_TIMEOUT)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        failed = [
            command
            for command, task in zip(commands, tasks, strict=True)
            if task not in done or task.exception() is not None
        ]
        if not failed:
            return [], None
        errors = [error for t in tasks if t in done and (error := t.exception()) is not None]
        return failed, errors[0] if errors else TimeoutError("publish confirms timed out")

    async def _release(self, unpublished: list[SendMessages], lease_until: datetime) -> None:
        """Give unpublished commands' rows back to the next claim; if the database is gone
        too, their leases run out instead."""
        try:
            async with self._sessionmaker.begin() as session:
                moves = await ledger.release_unpublished(session, unpublished, lease_until)
        except FAULTS as error:
            log.warning("dispatch.release_failed", error=describe(error))
            return
        log.info("dispatch.released", commands=len(unpublished), count=moves.total)

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
