"""A paused mailing in the scheduler: nothing claimed, waiting rows parked (state and
attempts kept, nothing expired), due times computed afresh on resume, and the end still
expiring what is unsent."""

import asyncio
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_common.send_window import SendWindow, first_due_at, zone
from herald_scheduler.dispatcher import Dispatcher
from herald_scheduler.reconciler import NO_WINDOW_BEFORE_END, Reconciler
from herald_scheduler.repository import ledger
from herald_scheduler.repository.ledger import MAILING_ENDED
from herald_scheduler.sweeper import Sweeper
from tests.integration.scheduler.conftest import Broker
from tests.integration.scheduler.factories import (
    create_client,
    create_clients,
    create_mailing,
    messages_of,
    rebuild_counters,
    set_message,
    update_mailing,
    utc_now,
)


def dispatcher(sessionmaker: async_sessionmaker[AsyncSession], broker: Broker) -> Dispatcher:
    return Dispatcher(
        sessionmaker,
        broker.topology.send,
        claim=1000,
        batch_size=100,
        interval=0.05,
        wakeup=asyncio.Event(),
    )


async def pause(engine: AsyncEngine, mailing_id: int) -> int:
    return await update_mailing(engine, mailing_id, paused_at=func.now())


async def resume(engine: AsyncEngine, mailing_id: int) -> int:
    return await update_mailing(engine, mailing_id, paused_at=None)


def window_around_now(hours_from_now: float, length_hours: float = 1.0) -> tuple[time, time]:
    """A UTC window opening ``hours_from_now`` from now (negative: already open)."""
    opens = datetime.now(UTC) + timedelta(hours=hours_from_now)
    start = opens.replace(second=0, microsecond=0)
    return start.time(), (start + timedelta(hours=length_hours)).time()


async def test_the_rows_of_a_paused_mailing_are_not_claimed_until_it_resumes(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    broker: Broker,
) -> None:
    await create_clients(ledger_db, 5)
    mailing_id = await create_mailing(ledger_db)
    other = await create_mailing(ledger_db)
    for each in (mailing_id, other):
        await reconciler.reconcile_mailing(each)

    # Paused, and not yet reconciled: the claim alone keeps its rows back.
    await pause(ledger_db, mailing_id)
    queued = await dispatcher(sessionmaker, broker).dispatch_once()

    assert queued == 5
    assert {command.mailing_id for command in await broker.take_commands(5)} == {other}
    assert {m.status for m in await messages_of(ledger_db, mailing_id)} == {"scheduled"}
    async with sessionmaker.begin() as session:
        assert await ledger.count_due_unqueued(session) == 0

    await resume(ledger_db, mailing_id)
    await reconciler.reconcile_mailing(mailing_id)
    assert await dispatcher(sessionmaker, broker).dispatch_once() == 5
    assert {m.status for m in await messages_of(ledger_db, mailing_id)} == {"queued"}


async def test_a_pause_parks_waiting_rows_at_the_end_and_leaves_held_ones_to_the_senders(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    await create_clients(ledger_db, 3)
    end_at = utc_now() + timedelta(hours=1)
    mailing_id = await create_mailing(ledger_db, end_at=end_at)
    await reconciler.reconcile_mailing(mailing_id)
    scheduled, queued, retrying = await messages_of(ledger_db, mailing_id)
    await set_message(ledger_db, queued.id, status="queued", attempts=1)
    await set_message(ledger_db, retrying.id, status="retrying", attempts=2)
    await rebuild_counters(ledger_db, mailing_id)

    await pause(ledger_db, mailing_id)
    result = await reconciler.reconcile_mailing(mailing_id)

    rows = {m.id: m for m in await messages_of(ledger_db, mailing_id)}
    assert result is not None
    assert (result.expired, result.cancelled) == (0, 0)
    # Parked where no claim reaches: its due time is the end.
    assert (rows[scheduled.id].status, rows[scheduled.id].due_at) == ("scheduled", end_at)
    # What a dispatch holds stays as it is: its sender hands it back within a second.
    assert (rows[queued.id].status, rows[queued.id].attempts) == ("queued", 1)
    assert (rows[retrying.id].status, rows[retrying.id].attempts) == ("retrying", 2)


async def test_a_client_that_joins_a_paused_mailing_waits_parked(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    end_at = utc_now() + timedelta(hours=1)
    mailing_id = await create_mailing(ledger_db, end_at=end_at)
    await pause(ledger_db, mailing_id)
    await reconciler.reconcile_mailing(mailing_id)

    client_id = await create_client(ledger_db)
    await reconciler.reconcile_clients([client_id])

    [row] = await messages_of(ledger_db, mailing_id)
    assert (row.status, row.due_at) == ("scheduled", end_at)


async def test_resume_recomputes_due_at_under_the_current_window(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    await create_clients(ledger_db, 2)
    end_at = utc_now() + timedelta(days=2)
    mailing_id = await create_mailing(
        ledger_db, end_at=end_at, window=window_around_now(-0.5, length_hours=2)
    )
    await reconciler.reconcile_mailing(mailing_id)
    due_before = {m.due_at for m in await messages_of(ledger_db, mailing_id)}
    assert all(due <= utc_now() for due in due_before)
    await pause(ledger_db, mailing_id)
    await reconciler.reconcile_mailing(mailing_id)

    # While paused, the window moves to later today: the resume must follow it.
    start, end = window_around_now(2)
    await update_mailing(ledger_db, mailing_id, send_window_start=start, send_window_end=end)
    await reconciler.reconcile_mailing(mailing_id)
    assert {m.due_at for m in await messages_of(ledger_db, mailing_id)} == {end_at}
    await resume(ledger_db, mailing_id)
    await reconciler.reconcile_mailing(mailing_id)

    opening = first_due_at(utc_now(), end_at, zone("UTC"), SendWindow(start, end))
    rows = await messages_of(ledger_db, mailing_id)
    assert {(m.status, m.due_at) for m in rows} == {("scheduled", opening)}


async def test_resume_within_the_window_makes_the_waiting_rows_due_at_once(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    broker: Broker,
) -> None:
    await create_clients(ledger_db, 3)
    mailing_id = await create_mailing(ledger_db)
    await pause(ledger_db, mailing_id)
    await reconciler.reconcile_mailing(mailing_id)
    assert await dispatcher(sessionmaker, broker).dispatch_once() == 0

    await resume(ledger_db, mailing_id)
    await reconciler.reconcile_mailing(mailing_id)

    assert all(m.due_at <= utc_now() for m in await messages_of(ledger_db, mailing_id))
    assert await dispatcher(sessionmaker, broker).dispatch_once() == 3


async def test_a_resume_once_the_window_no_longer_opens_before_the_end_expires(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    await create_clients(ledger_db, 2)
    # The window is open now and closes in 30 minutes; the mailing ends in an hour.
    mailing_id = await create_mailing(
        ledger_db,
        end_at=utc_now() + timedelta(hours=1),
        window=window_around_now(-0.5, length_hours=1),
    )
    await pause(ledger_db, mailing_id)
    await reconciler.reconcile_mailing(mailing_id)
    assert {m.status for m in await messages_of(ledger_db, mailing_id)} == {"scheduled"}

    # Resumed once the window has closed for the last time before the end (as if after a
    # 40-minute pause: here the window moves into the past instead of the test waiting).
    start, end = window_around_now(-2)
    await update_mailing(
        ledger_db, mailing_id, paused_at=None, send_window_start=start, send_window_end=end
    )
    await reconciler.reconcile_mailing(mailing_id)

    rows = await messages_of(ledger_db, mailing_id)
    assert {(m.status, m.last_error) for m in rows} == {("expired", NO_WINDOW_BEFORE_END)}


async def test_the_end_expires_a_paused_mailings_unsent_rows_as_always(
    ledger_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession], reconciler: Reconciler
) -> None:
    await create_clients(ledger_db, 3)
    mailing_id = await create_mailing(ledger_db, end_at=utc_now() + timedelta(hours=1))
    await reconciler.reconcile_mailing(mailing_id)
    first, *_ = await messages_of(ledger_db, mailing_id)
    await set_message(ledger_db, first.id, status="retrying", attempts=1)
    await rebuild_counters(ledger_db, mailing_id)
    await pause(ledger_db, mailing_id)
    await reconciler.reconcile_mailing(mailing_id)
    assert (await Sweeper(sessionmaker).sweep_once()).total == 0  # paused: nothing expires

    await update_mailing(ledger_db, mailing_id, end_at=utc_now())
    moves = await Sweeper(sessionmaker).sweep_once()

    rows = await messages_of(ledger_db, mailing_id)
    assert {(m.status, m.last_error) for m in rows} == {("expired", MAILING_ENDED)}
    assert moves.total == 3
