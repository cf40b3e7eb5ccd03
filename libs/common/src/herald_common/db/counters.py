"""The ledger's message counts by status over every mailing: sums of ``mailing_counters``.

One row per mailing, kept in step with the ledger in the same transactions, so this
costs a scan of a small table, never of the messages. Deleted mailings' messages count:
they stay in the ledger and the counters, as the history they are. Read by the api's
totals and the scheduler's ``herald_messages`` gauge.
"""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import MailingCounters
from herald_common.domain import MessageStatus

_TOTALS = select(
    *(
        func.coalesce(func.sum(getattr(MailingCounters, status.value)), 0).label(status.value)
        for status in MessageStatus
    )
)


async def messages_by_status(session: AsyncSession) -> dict[MessageStatus, int]:
    row = (await session.execute(_TOTALS)).one()
    return {status: int(getattr(row, status.value)) for status in MessageStatus}
