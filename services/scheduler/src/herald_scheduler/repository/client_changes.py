"""The client journal (``client_changes``): what the api wrote, what a reconcile covered.

Every removal and the api's writes lock entries in client id order, so that they cannot
deadlock one another.
"""

from collections.abc import Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

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
