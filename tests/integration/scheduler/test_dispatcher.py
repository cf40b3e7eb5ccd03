"""The dispatcher: due rows become send commands (published with confirms) and `queued`."""

import asyncio
from datetime import timedelta

import aio_pika
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_scheduler.dispatcher import Dispatcher
from herald_scheduler.reconciler import Reconciler
from tests.integration.scheduler.conftest import Broker
from tests.integration.scheduler.factories import (
    cancel_mailing,
    create_clients,
    create_mailing,
    messages_of,
    set_attempts,
    utc_now,
)


def dispatcher(
    sessionmaker: async_sessionmaker[AsyncSession],
    broker: Broker,
    *,
    claim: int = 1000,
    batch_size: int = 100,
) -> Dispatcher:
    return Dispatcher(
        sessionmaker,
        broker.topology.send,
        claim=claim,
        batch_size=batch_size,
        interval=0.05,
        wakeup=asyncio.Event(),
    )


async def test_due_rows_are_published_in_commands_and_marked_queued(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    broker: Broker,
) -> None:
    await create_clients(ledger_db, 5)
    first = await create_mailing(ledger_db, correlation_id="corr-first")
    second = await create_mailing(ledger_db, correlation_id="corr-second")
    for mailing_id in (first, second):
        await reconciler.reconcile_mailing(mailing_id)

    queued = await dispatcher(sessionmaker, broker, batch_size=2).dispatch_once()
    commands = await broker.take_commands(10)

    assert queued == 10
    rows = {
        m.id: m for mailing_id in (first, second) for m in await messages_of(ledger_db, mailing_id)
    }
    assert {m.status for m in rows.values()} == {"queued"}
    assert all(m.queued_at is not None for m in rows.values())
    assert sorted(ref.id for c in commands for ref in c.messages) == sorted(rows)
    for command in commands:
        assert len(command.messages) <= 2
        assert {rows[ref.id].mailing_id for ref in command.messages} == {command.mailing_id}
        assert command.correlation_id == (
            "corr-first" if command.mailing_id == first else "corr-second"
        )
        assert all(ref.attempts == 0 for ref in command.messages)


async def test_rows_not_yet_due_or_of_cancelled_mailings_stay_scheduled(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    broker: Broker,
) -> None:
    await create_clients(ledger_db, 2)
    later = await create_mailing(ledger_db, start_at=utc_now() + timedelta(hours=1))
    cancelled = await create_mailing(ledger_db)
    for mailing_id in (later, cancelled):
        await reconciler.reconcile_mailing(mailing_id)
    await cancel_mailing(ledger_db, cancelled)  # not reconciled yet: rows still scheduled

    assert await dispatcher(sessionmaker, broker).dispatch_once() == 0
    assert await broker.queue_depth("herald.send.commands") == 0
    for mailing_id in (later, cancelled):
        assert {m.status for m in await messages_of(ledger_db, mailing_id)} == {"scheduled"}


async def test_a_retried_row_carries_its_attempts(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    broker: Broker,
) -> None:
    await create_clients(ledger_db, 1)
    mailing_id = await create_mailing(ledger_db)
    await reconciler.reconcile_mailing(mailing_id)
    await set_attempts(ledger_db, mailing_id, 4)

    await dispatcher(sessionmaker, broker).dispatch_once()

    (command,) = await broker.take_commands(1)
    assert [ref.attempts for ref in command.messages] == [4]


async def test_two_racing_dispatchers_publish_each_row_exactly_once(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    broker: Broker,
) -> None:
    await create_clients(ledger_db, 600)
    mailing_id = await create_mailing(ledger_db)
    await reconciler.reconcile_mailing(mailing_id)
    racers = [dispatcher(sessionmaker, broker, claim=40, batch_size=15) for _ in range(2)]

    async def drain(racer: Dispatcher) -> int:
        total = 0
        while queued := await racer.dispatch_once():
            total += queued
        return total

    totals = await asyncio.gather(*(drain(racer) for racer in racers))
    commands = await broker.take_commands(600)

    published = [ref.id for c in commands for ref in c.messages]
    rows = await messages_of(ledger_db, mailing_id)
    assert sum(totals) == 600
    assert len(published) == len(set(published)) == 600
    assert set(published) == {m.id for m in rows}
    assert {m.status for m in rows} == {"queued"}


async def test_dispatch_loop_wakes_up_for_new_work_and_stops(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    broker: Broker,
) -> None:
    wakeup = asyncio.Event()
    reconciler = Reconciler(ledger_db, chunk_size=1000, on_materialised=wakeup.set)
    loop = Dispatcher(
        sessionmaker, broker.topology.send, claim=100, batch_size=10, interval=0.05, wakeup=wakeup
    )
    stopping = asyncio.Event()
    running = asyncio.create_task(loop.run(stopping))
    try:
        await create_clients(ledger_db, 3)
        mailing_id = await create_mailing(ledger_db)
        await reconciler.reconcile_mailing(mailing_id)
        commands = await broker.take_commands(3)
        assert sorted(r.id for c in commands for r in c.messages) == sorted(
            m.id for m in await messages_of(ledger_db, mailing_id)
        )
    finally:
        stopping.set()
        await asyncio.wait_for(running, timeout=5)
    assert running.exception() is None


async def test_a_failed_publish_leaves_the_rows_scheduled(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    broker: Broker,
) -> None:
    await create_clients(ledger_db, 3)
    mailing_id = await create_mailing(ledger_db)
    await reconciler.reconcile_mailing(mailing_id)
    # An exchange nothing is bound to: the broker returns the command as unroutable.
    channel = await broker.connection.channel(on_return_raises=True)
    nowhere = await channel.declare_exchange("herald.test.nowhere", auto_delete=True)
    failing = Dispatcher(
        sessionmaker, nowhere, claim=100, batch_size=2, interval=0.05, wakeup=asyncio.Event()
    )

    with pytest.raises(aio_pika.exceptions.PublishError):
        await failing.dispatch_once()

    assert {m.status for m in await messages_of(ledger_db, mailing_id)} == {"scheduled"}
    await channel.close()
