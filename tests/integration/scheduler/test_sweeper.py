"""The sweeper: unsent rows of ended mailings expire, those of deleted mailings are cancelled."""

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_common.domain import MessageStatus
from herald_scheduler.repository.ledger import MAILING_CANCELLED, MAILING_ENDED
from herald_scheduler.sweeper import Sweeper
from tests.integration.scheduler.factories import (
    cancel_mailing,
    create_mailing,
    insert_messages,
    messages_of,
    update_mailing,
    utc_now,
)

EVERY_STATUS = [(status.value, 1) for status in MessageStatus]


async def test_unsent_rows_expire_at_end_and_finals_stay(
    ledger_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing_id = await create_mailing(ledger_db)
    ids = await insert_messages(ledger_db, mailing_id, EVERY_STATUS)
    sweeper = Sweeper(sessionmaker)
    assert (await sweeper.sweep_once()).total == 0  # still running

    await update_mailing(ledger_db, mailing_id, end_at=utc_now())
    moves = await sweeper.sweep_once()

    rows = {m.id: m for m in await messages_of(ledger_db, mailing_id)}
    after = {status: rows[i] for i, (status, _) in zip(ids, EVERY_STATUS, strict=True)}
    for status in ("scheduled", "queued", "retrying"):
        assert (after[status].status, after[status].last_error) == ("expired", MAILING_ENDED)
        assert after[status].finished_at is not None
    for status in ("sent", "failed", "expired", "cancelled"):
        assert after[status].status == status
    assert moves.count(MessageStatus.expired) == 3


async def test_unsent_rows_of_a_deleted_mailing_are_cancelled(
    ledger_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing_id = await create_mailing(ledger_db, start_at=utc_now() + timedelta(hours=1))
    await insert_messages(ledger_db, mailing_id, [("scheduled", 0), ("queued", 0), ("sent", 1)])

    await cancel_mailing(ledger_db, mailing_id)
    moves = await Sweeper(sessionmaker).sweep_once()

    rows = await messages_of(ledger_db, mailing_id)
    assert sorted((m.status, m.last_error) for m in rows) == [
        ("cancelled", MAILING_CANCELLED),
        ("cancelled", MAILING_CANCELLED),
        ("sent", None),
    ]
    assert moves.count(MessageStatus.cancelled) == 2


async def test_sweeps_in_batches_until_done(
    ledger_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    first = await create_mailing(ledger_db)
    second = await create_mailing(ledger_db)
    for mailing_id in (first, second):
        await insert_messages(ledger_db, mailing_id, [("scheduled", 0)] * 4)
        await update_mailing(ledger_db, mailing_id, end_at=utc_now())

    moves = await Sweeper(sessionmaker, batch=3).sweep_once()

    assert moves.count(MessageStatus.expired) == 8
    for mailing_id in (first, second):
        assert {m.status for m in await messages_of(ledger_db, mailing_id)} == {"expired"}
