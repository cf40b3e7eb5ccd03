"""The ledger's message counts by status for the metrics: sums of ``mailing_counters``.

One row per mailing, kept in step with the ledger in the same transactions, so this
costs a scan of a small table, never of the messages.
"""

# SQL text here is assembled from the MessageStatus names only; there are no values.
# ruff: noqa: S608

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.domain import MessageStatus

_TOTALS = text(
    "SELECT "
    + ", ".join(f"coalesce(sum({s.value}), 0) AS {s.value}" for s in MessageStatus)
    + " FROM mailing_counters"
)


async def messages_by_status(session: AsyncSession) -> dict[MessageStatus, int]:
    row = (await session.execute(_TOTALS)).one()
    return {status: int(getattr(row, status.value)) for status in MessageStatus}
