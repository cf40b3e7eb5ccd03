"""Export the ledger's message counts by status (``herald_messages``) every few seconds.

The counters a process increments (``herald_messages_final_total``) start from zero with
it; this gauge is the ledger's own count, so a scrape can be checked against the ledger.
"""

import asyncio

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.db.counters import messages_by_status
from herald_common.domain import MessageStatus
from herald_common.metrics import LEDGER_MESSAGES
from herald_common.runtime import run_periodically

INTERVAL = 5.0

log = structlog.get_logger()


async def refresh(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[MessageStatus, int]:
    async with sessionmaker.begin() as session:
        counts = await messages_by_status(session)
    for status, count in counts.items():
        LEDGER_MESSAGES.labels(status=status.value).set(count)
    return counts


async def run(
    sessionmaker: async_sessionmaker[AsyncSession],
    stopping: asyncio.Event,
    interval: float = INTERVAL,
) -> None:
    """Refresh until ``stopping``; an outage keeps the last values and backs off."""

    async def step() -> None:
        await refresh(sessionmaker)

    await run_periodically(
        step, stopping, interval, failed="status_counts.failed", error="status_counts.error"
    )
