"""What the workers add for observability: the ledger gauge, and the client id the sender reads."""

from prometheus_client import REGISTRY
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_common.db.models import MailingCounters
from herald_common.domain import MessageStatus
from herald_scheduler import status_counts
from herald_sender.repository import take_messages
from tests.integration.sender.factories import create_mailing, create_messages


def gauge(status: MessageStatus) -> float | None:
    return REGISTRY.get_sample_value("herald_messages", {"status": status.value})


async def test_the_status_counts_sums_every_mailings_counters(
    clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    first = await create_mailing(clean_db)
    second = await create_mailing(clean_db)
    async with clean_db.begin() as connection:
        await connection.execute(
            insert(MailingCounters).values(mailing_id=first, sent=5, failed=1, scheduled=2)
        )
        await connection.execute(
            insert(MailingCounters).values(mailing_id=second, sent=7, cancelled=3)
        )

    counts = await status_counts.refresh(sessionmaker)

    expected = {MessageStatus.sent: 12, MessageStatus.failed: 1, MessageStatus.scheduled: 2}
    expected |= {MessageStatus.cancelled: 3}
    for status in MessageStatus:
        assert counts[status] == expected.get(status, 0), status
        assert gauge(status) == expected.get(status, 0), status


async def test_the_status_counts_reads_zero_on_an_empty_ledger(
    clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await status_counts.refresh(sessionmaker)

    assert all(gauge(status) == 0 for status in MessageStatus)


async def test_the_sender_reads_each_messages_client(clean_db: AsyncEngine) -> None:
    mailing_id = await create_mailing(clean_db)
    message_ids = await create_messages(clean_db, mailing_id, 3, first_client_id=40)

    async with clean_db.connect() as connection:
        states = await take_messages(connection, message_ids, None, 60.0)

    assert sorted((state.id, state.client_id) for state in states) == list(
        zip(message_ids, [40, 41, 42], strict=True)
    )
