"""herald_messages_final_total moves where rows become final outside the ledger writer:
the sweeper (ended, deleted mailings) and the reconciler (deleted mailings, clients); and
it counts each message once, even when a late sent overrules the final status it had."""

from typing import cast

from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_common.contracts import MessageOutcome
from herald_common.domain import FINAL_STATUSES, MessageStatus
from herald_scheduler.outcomes import OutcomeWriter, StatusDelivery
from herald_scheduler.reconciler import Reconciler
from herald_scheduler.sweeper import Sweeper
from tests.integration.scheduler.factories import (
    cancel_mailing,
    create_client,
    create_mailing,
    delete_client,
    insert_messages,
    messages_of,
    statuses_of,
    update_mailing,
    utc_now,
)


def finals(status: MessageStatus) -> float:
    return REGISTRY.get_sample_value("herald_messages_final_total", {"status": status.value}) or 0


def sent_late(replaced: MessageStatus) -> float:
    sample = REGISTRY.get_sample_value(
        "herald_messages_sent_late_total", {"replaced": replaced.value}
    )
    return sample or 0


def every_final() -> dict[MessageStatus, float]:
    return {status: finals(status) for status in FINAL_STATUSES}


class AckedDelivery:
    """Stands in for the broker's delivery of a status event: the writer only acks it."""

    processed = False
    message_id = "late-sent"

    async def ack(self) -> None:
        self.processed = True


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


async def test_a_late_sent_over_expired_counts_the_message_once(
    clean_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing_id = await create_mailing(clean_db)
    (message_id,) = await insert_messages(clean_db, mailing_id, [("queued", 1)])
    await update_mailing(clean_db, mailing_id, end_at=utc_now())
    before, late_before = every_final(), sent_late(MessageStatus.expired)
    await Sweeper(sessionmaker).sweep_once()
    late = MessageOutcome(
        message_id=message_id,
        mailing_id=mailing_id,
        status=MessageStatus.sent,
        attempts=1,
        at=utc_now(),
    )
    delivery = StatusDelivery(cast(AbstractIncomingMessage, AckedDelivery()), [late])

    await OutcomeWriter(sessionmaker, batch_size=10, batch_wait=0.01).apply([delivery])

    assert [row.status for row in await messages_of(clean_db, mailing_id)] == ["sent"]
    moved = {status: every_final()[status] - before[status] for status in FINAL_STATUSES}
    assert moved == {
        MessageStatus.sent: 0,
        MessageStatus.failed: 0,
        MessageStatus.expired: 1,
        MessageStatus.cancelled: 0,
    }
    assert sent_late(MessageStatus.expired) - late_before == 1
