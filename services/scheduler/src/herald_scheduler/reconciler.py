"""Bring the ledger in line with the current mailings and clients (state-based, idempotent).

Events carry ids only; every step reads the current rows, so a duplicate, late or
out-of-order event changes nothing, and running a step twice is harmless. Due times
are computed once per (mailing, time zone), never per client.
"""

import asyncio
import time
import zoneinfo
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from herald_common.db.engine import create_sessionmaker
from herald_common.domain import MessageStatus
from herald_common.metrics import MESSAGES_FINAL
from herald_common.runtime import run_periodically
from herald_common.send_window import first_due_at, zone
from herald_scheduler.repository import ledger, mailings
from herald_scheduler.repository.ledger import MAILING_ENDED, Moves, Rescheduled, ZoneDue
from herald_scheduler.repository.mailings import (
    MailingFrame,
    MailingState,
    MessageWindow,
    ZoneGroup,
)

NO_WINDOW_BEFORE_END = "no send window opening before the mailing's end"
UNKNOWN_TIME_ZONE = "unknown time zone"
LOGGED_CLIENT_IDS = 1000
FIRST_CHUNK_SIZE = 2000
# Ledger rows one statement of a mailing reconcile locks at most: the ledger writer, which
# applies outcomes to the same rows, never waits for longer than one such statement.
ROWS_PER_TRANSACTION = 10_000
# Mailings whose reconcile locks one client-reconcile transaction shares: PostgreSQL's
# lock table holds max_locks_per_transaction x max_connections (some thousands) in all.
MAILINGS_PER_TRANSACTION = 500

log = structlog.get_logger()


def zone_due(mailing: MailingFrame, timezone: str, now: datetime) -> ZoneDue:
    """When this mailing's clients in this zone are first due, or why they never are.

    A paused mailing's rows are parked at its end, where no claim reaches them: the
    dispatcher skips paused mailings anyway, but a backlog of due rows would be walked
    past by every claim. The pause expires nothing; only a zone that has no due time
    under the terms themselves does. A resume's reconcile computes the real due times.
    """
    if now >= mailing.end_at:
        return ZoneDue(mailing.id, timezone, None, MAILING_ENDED)
    try:
        tz = zone(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return ZoneDue(mailing.id, timezone, None, UNKNOWN_TIME_ZONE)
    due_at = first_due_at(max(mailing.start_at, now), mailing.end_at, tz, mailing.send_window)
    if due_at is None:
        return ZoneDue(mailing.id, timezone, None, NO_WINDOW_BEFORE_END)
    if mailing.paused:
        return ZoneDue(mailing.id, timezone, mailing.end_at)
    return ZoneDue(mailing.id, timezone, due_at)


def _zone_dues(groups: Iterable[ZoneGroup], now: datetime) -> list[ZoneDue]:
    return [zone_due(group.mailing, group.timezone, now) for group in groups]


def _count_finals(*moves: Moves) -> None:
    for move in moves:
        for status, count in move.finals.items():
            MESSAGES_FINAL.labels(status=status.value).inc(count)


@dataclass(frozen=True)
class MailingReconciled:
    inserted: int
    expired: int
    cancelled: int
    rescheduled: int


@dataclass(frozen=True)
class ClientsReconciled:
    inserted: int
    expired: int
    cancelled: int
    rescheduled: int


class Reconciler:
    """Materialises, cancels and reschedules ledger rows; one transaction per step or chunk."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        chunk_size: int,
        on_materialised: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._sessionmaker = create_sessionmaker(engine)
        self._chunk_size = chunk_size
        # Wakes the dispatcher, so a big mailing's first sends start while it materialises.
        self._on_materialised = on_materialised

    async def reconcile_mailing(
        self, mailing_id: int, *, only_if_behind: bool = False
    ) -> MailingReconciled | None:
        """Make the mailing's ledger match its current filter, frame and window.

        Serialised per mailing, and the mailing is read only once the lock is held: a
        reconcile that started before a change can never finish after the one for it.
        ``only_if_behind`` skips a mailing reconciled at its revision while this call
        waited for the lock (the catch-up pass racing a long materialisation).
        """
        async with mailings.reconciling(self._engine, mailing_id):
            started = time.perf_counter()
            async with self._sessionmaker.begin() as session:
                state = await mailings.get_mailing(session, mailing_id)
            if state is None:
                log.warning("mailing.missing", mailing_id=mailing_id)
                return None
            if only_if_behind and state.reconciled_revision >= state.revision:
                return None
            correlation_id = structlog.contextvars.get_contextvars().get("correlation_id")
            with structlog.contextvars.bound_contextvars(
                mailing_id=mailing_id, correlation_id=correlation_id or state.correlation_id
            ):
                return await self._reconcile_mailing(state, started)

    async def _reconcile_mailing(self, state: MailingState, started: float) -> MailingReconciled:
        mailing_id = state.frame.id
        if state.cancelled_at is not None:
            cancelled = Moves()
            async for window in self._message_windows(mailing_id):
                async with self._sessionmaker.begin() as session:
                    moves = await ledger.cancel_unsent_of_mailing(
                        session, mailing_id, window.after, window.through
                    )
                _count_finals(moves)
                cancelled += moves
            async with self._sessionmaker.begin() as session:
                await mailings.mark_reconciled(session, mailing_id, state.revision)
            outcome = MailingReconciled(0, 0, cancelled.total, 0)
        else:
            inserted, expired_on_insert = await self._materialise(state.frame)
            cancelled, rescheduled = await self._apply_terms(state.frame)
            async with self._sessionmaker.begin() as session:
                await mailings.mark_reconciled(session, mailing_id, state.revision)
            outcome = MailingReconciled(
                inserted=inserted,
                expired=expired_on_insert + rescheduled.expired.total,
                cancelled=cancelled.total,
                rescheduled=rescheduled.rescheduled,
            )
        log.info(
            "mailing.reconciled",
            mailing_id=mailing_id,
            revision=state.revision,
            inserted=outcome.inserted,
            expired=outcome.expired,
            cancelled=outcome.cancelled,
            rescheduled=outcome.rescheduled,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return outcome

    async def _apply_terms(self, mailing: MailingFrame) -> tuple[Moves, Rescheduled]:
        """Cancel, refresh and reschedule the mailing's rows, window by window.

        Every statement is a transaction of its own over one window, so that a change to
        a big mailing never holds its rows for long. Nothing relies on the windows sharing
        a transaction: each step is idempotent, and until the mailing is marked reconciled
        (after the last window) the catch-up pass runs it all again.
        """
        cancelled, rescheduled = Moves(), Rescheduled()
        async for window in self._message_windows(mailing.id):
            after, through = window.after, window.through
            async with self._sessionmaker.begin() as session:
                moves = await ledger.cancel_unmatched_in_mailing(
                    session, mailing.id, after, through
                )
            _count_finals(moves)
            cancelled += moves
            async with self._sessionmaker.begin() as session:
                await ledger.refresh_snapshots_in_mailing(session, mailing.id, after, through)
            async with self._sessionmaker.begin() as session:
                now = await mailings.database_now(session)
                zones = await mailings.unsent_zones_in_window(session, mailing.id, window)
                dues = [zone_due(mailing, tz, now) for tz in zones]
                moved = await ledger.reschedule_in_mailing(
                    session, mailing.id, after, through, dues, now
                )
            _count_finals(moved.expired)
            rescheduled += moved
        return cancelled, rescheduled

    async def _message_windows(self, mailing_id: int) -> AsyncIterator[MessageWindow]:
        """The mailing's ledger rows in windows of ROWS_PER_TRANSACTION, keyset on client id."""
        after = 0
        while True:
            async with self._sessionmaker.begin() as session:
                window = await mailings.next_message_window(
                    session, mailing_id, after, ROWS_PER_TRANSACTION
                )
            if window is None:
                return
            yield window
            if window.size < ROWS_PER_TRANSACTION:
                return
            after = window.through

    async def _materialise(self, mailing: MailingFrame) -> tuple[int, int]:
        """Insert the missing rows chunk by chunk (keyset on client id); (inserted, expired)."""
        inserted = expired = 0
        after = 0
        # A small first chunk: the dispatcher can start sending within a fraction of a
        # second while the rest of a big mailing materialises.
        size = min(FIRST_CHUNK_SIZE, self._chunk_size)
        while True:
            async with self._sessionmaker.begin() as session:
                chunk = await mailings.next_client_chunk(session, mailing.id, after, size)
                if chunk is None:
                    break
                dues = [zone_due(mailing, tz, chunk.now) for tz in chunk.timezones]
                moves = await ledger.insert_for_client_range(session, dues, after, chunk.through)
            _count_finals(moves)
            inserted += moves.total
            expired += moves.count(MessageStatus.expired)
            log.info(
                "mailing.materialised",
                mailing_id=mailing.id,
                through_client_id=chunk.through,
                matched=chunk.size,
                inserted=moves.total,
                expired=moves.count(MessageStatus.expired),
            )
            if moves.count(MessageStatus.scheduled):
                self._on_materialised()
            after = chunk.through
            if chunk.size < size:
                break
            size = self._chunk_size
        return inserted, expired

    async def reconcile_clients(self, client_ids: Sequence[int]) -> ClientsReconciled:
        """Make these clients' rows match the current clients and every running mailing.

        Deleted clients have no row in ``clients``: their unsent messages are cancelled.
        """
        started = time.perf_counter()
        ids = sorted(set(client_ids))
        inserted = Moves()
        for batch in await self._mailing_batches(mailings.matching_mailing_ids, ids):
            async with self._sessionmaker.begin() as session:
                groups = await self._share_and_read(
                    session, mailings.matching_zone_groups, ids, batch
                )
                dues = _zone_dues(groups, await mailings.database_now(session))
                moves = await ledger.insert_for_clients(session, dues, ids) if dues else Moves()
            _count_finals(moves)
            inserted += moves
        async with self._sessionmaker.begin() as session:
            cancelled = await ledger.cancel_unmatched_of_clients(session, ids)
        _count_finals(cancelled)
        async with self._sessionmaker.begin() as session:
            await ledger.refresh_snapshots_of_clients(session, ids)
        rescheduled = Rescheduled()
        for batch in await self._mailing_batches(mailings.unsent_mailing_ids, ids):
            async with self._sessionmaker.begin() as session:
                groups = await self._share_and_read(
                    session, mailings.unsent_zone_groups, ids, batch
                )
                now = await mailings.database_now(session)
                moved = await ledger.reschedule_of_clients(
                    session, ids, _zone_dues(groups, now), now
                )
            _count_finals(moved.expired)
            rescheduled += moved
        if inserted.count(MessageStatus.scheduled):
            self._on_materialised()
        outcome = ClientsReconciled(
            inserted=inserted.total,
            expired=inserted.count(MessageStatus.expired) + rescheduled.expired.total,
            cancelled=cancelled.total,
            rescheduled=rescheduled.rescheduled,
        )
        # A single client's id is bound by the event handler; a bulk event's line names its
        # first ones (the api's client.* lines name them all).
        bulk = {"client_ids": ids[:LOGGED_CLIENT_IDS]} if len(ids) > 1 else {}
        log.info(
            "clients.reconciled",
            clients=len(ids),
            **bulk,
            inserted=outcome.inserted,
            expired=outcome.expired,
            cancelled=outcome.cancelled,
            rescheduled=outcome.rescheduled,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return outcome

    async def _mailing_batches(
        self,
        find: Callable[[AsyncSession, Sequence[int]], Awaitable[list[int]]],
        client_ids: Sequence[int],
    ) -> list[list[int]]:
        """The mailings ``find`` names for these clients, in batches for one transaction each.

        Read without a lock: a mailing that comes to concern these clients after this read
        does so through a change of its own, whose reconcile reads these clients afresh.
        """
        async with self._sessionmaker.begin() as session:
            mailing_ids = await find(session, client_ids)
        size = MAILINGS_PER_TRANSACTION
        return [mailing_ids[i : i + size] for i in range(0, len(mailing_ids), size)]

    @staticmethod
    async def _share_and_read(
        session: AsyncSession,
        read: Callable[[AsyncSession, Sequence[int], Sequence[int]], Awaitable[list[ZoneGroup]]],
        client_ids: Sequence[int],
        mailing_ids: Sequence[int],
    ) -> list[ZoneGroup]:
        """Read these mailings' (mailing, zone) groups with their reconcile locks shared.

        Due times computed from a mailing's frame must not land after a reconcile for a
        newer frame: wait for any running one, then read under the lock and write in the
        same transaction; a reconcile for a newer frame then waits for the commit and
        moves these rows as well.

        That guarantee is per mailing, so a batch of mailings per transaction keeps it
        while bounding the locks held at once: a client matching thousands of mailings
        ran PostgreSQL's lock table out of shared memory.
        """
        await mailings.share_reconcile_locks(session, mailing_ids)
        return await read(session, client_ids, mailing_ids)

    async def reconcile_pending(self, limit: int = 100) -> int:
        """Reconcile mailings whose revision moved past the last reconciled one.

        Heals lost events and a crash in the middle of materialising.
        """
        async with self._sessionmaker.begin() as session:
            pending = await mailings.unreconciled_mailing_ids(session, limit)
        for mailing_id in pending:
            await self.reconcile_mailing(mailing_id, only_if_behind=True)
        return len(pending)


async def run_catch_up(reconciler: Reconciler, stopping: asyncio.Event, interval: float) -> None:
    """Every ``interval``, reconcile the mailings whose revision is ahead of the ledger."""

    async def step() -> None:
        await reconciler.reconcile_pending()

    await run_periodically(
        step, stopping, interval, failed="reconcile.failed", error="reconcile.error"
    )
