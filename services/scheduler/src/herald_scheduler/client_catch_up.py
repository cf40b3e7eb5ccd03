"""The client journal on the scheduler's side: clear what a reconcile covered, catch up the rest.

The api writes a ``client_changes`` entry with every client change, in the change's own
transaction (a deleted client leaves no row to carry a revision, so only a journal can
carry deletions). A client reconcile removes the entries it covered, unless they changed
again meanwhile. Entries older than a grace period are what no event reconciled (lost,
dead-lettered, or very late): a loop reconciles them, oldest first, in chunks.
"""

import asyncio
from collections.abc import Callable, Sequence

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.db.engine import create_sessionmaker
from herald_common.metrics import CLIENTS_CAUGHT_UP
from herald_common.runtime import run_periodically
from herald_scheduler.reconciler import ClientsReconciled, Reconciler
from herald_scheduler.repository import client_changes

# How long a change waits for its event before the catch-up reconciles it: the event
# path takes milliseconds, or a few minutes behind a big import; reconciling twice is
# harmless, only wasted work.
CATCH_UP_GRACE = 30.0
# Clients per reconcile_clients call of the catch-up.
CATCH_UP_CHUNK = 1000

log = structlog.get_logger()


class ClientJournalReconciler(Reconciler):
    """A reconciler whose client reconciles also remove the journal entries they covered.

    The revisions are read before the reconcile starts, so whatever it reads of the
    clients is at least as new as the changes those revisions stand for.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        chunk_size: int,
        on_materialised: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(engine, chunk_size=chunk_size, on_materialised=on_materialised)
        self._journal_sessions = create_sessionmaker(engine)

    async def reconcile_clients(self, client_ids: Sequence[int]) -> ClientsReconciled:
        async with self._journal_sessions.begin() as session:
            seen = await client_changes.revisions(session, client_ids)
        outcome = await super().reconcile_clients(client_ids)
        if seen:
            async with self._journal_sessions.begin() as session:
                await client_changes.clear(session, seen)
        return outcome

    async def catch_up_clients(
        self, *, grace: float = CATCH_UP_GRACE, limit: int = CATCH_UP_CHUNK
    ) -> int:
        """Reconcile one chunk of the entries pending longer than ``grace``; how many."""
        async with self._journal_sessions.begin() as session:
            client_ids = await client_changes.take_due(session, grace, limit)
        if not client_ids:
            return 0
        await self.reconcile_clients(client_ids)
        CLIENTS_CAUGHT_UP.inc(len(client_ids))
        log.info("clients.caught_up", count=len(client_ids))
        return len(client_ids)


async def run_client_catch_up(
    reconciler: ClientJournalReconciler,
    stopping: asyncio.Event,
    interval: float,
    *,
    grace: float = CATCH_UP_GRACE,
    chunk: int = CATCH_UP_CHUNK,
) -> None:
    """Every ``interval``, reconcile the clients whose change no event has reconciled.

    A full chunk means more are due: the next one follows at once.
    """

    async def step() -> float | None:
        full = await reconciler.catch_up_clients(grace=grace, limit=chunk) == chunk
        return 0.0 if full else None

    await run_periodically(
        step,
        stopping,
        interval,
        failed="clients.catch_up_failed",
        error="clients.catch_up_error",
    )
