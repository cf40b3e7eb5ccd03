"""herald_messages_final_total moves where rows become final outside the ledger writer:
the sweeper (ended, deleted mailings) and the reconciler (deleted mailings, clients)."""

from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_common.domain import MessageStatus
from herald_scheduler.reconciler import Reconciler
from herald_scheduler.sweeper import Sweeper
from tests.integration.scheduler.factories import (
    cancel_mailing,
    create_client,
    create_mailing,
    delete_client,
    insert_messages,
    statuses_of,
    update_mailing,
    utc_now,
)


def finals(status: MessageStatus) -> float:
    return REGISTRY.get_sample_value("herald_messages_final_total", {"status": status.value}) or 0


async def test_the_sweeper_counts_what_it_expires(
    clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing_id = await create_mailing(clean_db)
    await insert_messages(clean_db, mailing_id, [("scheduled", 0), ("retrying", 1), ("sent", 1)])
    await update_mailing(clean_db, mailing_id, end_at=utc_now())
    before = finals(MessageStatus.expired)

    await Sweeper(sessionmaker).sweep_once()

    assert finals(MessageStatus.expired) - before == 2


async def test_the_reconciler_counts_what_it_cancels(clean_db: AsyncEngine) -> None:
    mailing_id = await create_mailing(clean_db)
    await insert_messages(clean_db, mailing_id, [("scheduled", 0), ("queued", 0), ("sent", 1)])
    await cancel_mailing(clean_db, mailing_id)
    before = finals(MessageStatus.cancelled)

    await Reconciler(clean_db, chunk_size=100).reconcile_mailing(mailing_id)

    assert finals(MessageStatus.cancelled) - before == 2


async def test_a_deleted_clients_cancelled_message_is_counted(clean_db: AsyncEngine) -> None:
    client_id = await create_client(clean_db)
    mailing_id = await create_mailing(clean_db)
    reconciler = Reconciler(clean_db, chunk_size=100)
    await reconciler.reconcile_mailing(mailing_id)
    assert await statuses_of(clean_db, mailing_id) == {client_id: "scheduled"}
    await delete_client(clean_db, client_id)
    before = finals(MessageStatus.cancelled)

    await reconciler.reconcile_clients([client_id])

    assert await statuses_of(clean_db, mailing_id) == {client_id: "cancelled"}
    assert finals(MessageStatus.cancelled) - before == 1
