"""The client journal on the scheduler's side: clear what a reconcile covered, catch up the rest.

The api writes a ``client_changes`` entry with every client change, in the change's own
transaction (a deleted client leaves no row to carry a revision, so only a journal can
carry deletions). A client reconcile removes the entries it covered, unless they changed
again meanwhile. Entries older than a grace period are what no event reconciled (lost,
dead-lettered, or very late): a loop reconciles them, oldest first, in chunks.
"""

import asyncio
from collections.abc import Callable, Mapping, Sequence

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from herald_common.db.engine import create_sessionmaker
from herald_common.faults import FAULTS, describe
from herald_common.metrics import CLIENTS_CAUGHT_UP
from herald_scheduler.pacing import Backoff, wait_any
from herald_scheduler.reconciler import ClientsReconciled, Reconciler

# How long a change waits for its event before the catch-up reconciles it: the event
# path takes milliseconds, or a few minutes behind a big import; reconciling twice is
# harmless, only wasted work.
CATCH_UP_GRACE = 30.0
# Clients per reconcile_clients call of the catch-up.
CATCH_UP_CHUNK = 1000

log = structlog.get_logger()


# SQL on the journal. Every removal and the api's writes lock entries in client id order,
# so that they cannot deadlock one another.
_REVISIONS = text(
    "SELECT client_id, revision FROM client_changes"
    " WHERE client_id = ANY(CAST(:client_ids AS bigint[]))"
)
_CLEAR = text(
    """
    DELETE FROM client_changes
    WHERE client_id IN (
        SELECT j.client_id
        FROM client_changes j
        JOIN unnest(CAST(:client_ids AS bigint[]), CAST(:revisions AS bigint[]))
            AS seen (client_id, revision)
            ON seen.client_id = j.client_id AND seen.revision = j.revision
        ORDER BY j.client_id
        FOR UPDATE OF j
    )
    """
)
# Taking entries moves their pending_since on: another replica's pass leaves them alone
# for a grace period, and if this one dies mid-reconcile they come back after it.
_TAKE_DUE = text(
    """
    UPDATE client_changes j SET pending_since = now()
    FROM (
        SELECT client_id FROM client_changes
        WHERE pending_since <= now() - make_interval(secs => CAST(:grace AS double precision))
        ORDER BY pending_since, client_id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ) due
    WHERE j.client_id = due.client_id
    RETURNING j.client_id
    """
)


async def revisions(session: AsyncSession, client_ids: Sequence[int]) -> dict[int, int]:
    """client_id -> revision of the journal entries of these clients."""
    result = await session.execute(_REVISIONS, {"client_ids": list(client_ids)})
    return {row.client_id: row.revision for row in result}


async def clear(session: AsyncSession, seen: Mapping[int, int]) -> int:
    """Remove the entries that still hold the revision seen; how many went.

    An entry changed since it was read keeps its new revision: that change is not covered.
    """
    if not seen:
        return 0
    ids = sorted(seen)
    result = await session.execute(
        _CLEAR, {"client_ids": ids, "revisions": [seen[client_id] for client_id in ids]}
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def take_due(session: AsyncSession, grace: float, limit: int) -> list[int]:
    """Up to ``limit`` client ids of entries pending for ``grace`` seconds, oldest first."""
    result = await session.execute(_TAKE_DUE, {"grace": grace, "limit": limit})
    return sorted(result.scalars())


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
            seen = await revisions(session, client_ids)
        outcome = await super().reconcile_clients(client_ids)
        if seen:
            async with self._journal_sessions.begin() as session:
                await clear(session, seen)
        return outcome

    async def catch_up_clients(
        self, *, grace: float = CATCH_UP_GRACE, limit: int = CATCH_UP_CHUNK
    ) -> int:
        """Reconcile one chunk of the entries pending longer than ``grace``; how many."""
        async with self._journal_sessions.begin() as session:
            client_ids = await take_due(session, grace, limit)
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
    backoff = Backoff()
    while not stopping.is_set():
        pause = interval
        try:
            if await reconciler.catch_up_clients(grace=grace, limit=chunk) == chunk:
                pause = 0.0
            backoff.reset()
        except FAULTS as error:
            pause = max(interval, backoff.next_delay())
            log.warning("clients.catch_up_failed", error=describe(error), retry_in=round(pause, 2))
        except Exception:
            pause = max(interval, backoff.next_delay())
            log.exception("clients.catch_up_error", retry_in=round(pause, 2))
        await wait_any(stopping, within=pause)
