"""Exactly-once dispatch: rows are committed queued under their command's token before it
is published; copies with a stale token take nothing; lost commands' leases run out."""

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_common.contracts import MessageOutcome, SendMessages
from herald_common.domain import MessageStatus
from herald_scheduler.dispatcher import Dispatcher
from herald_scheduler.reconciler import Reconciler
from herald_scheduler.repository import ledger
from herald_scheduler.sweeper import Sweeper
from herald_sender.repository import take_messages
from tests.integration.scheduler.conftest import Broker, recount_mismatches
from tests.integration.scheduler.factories import (
    create_clients,
    create_mailing,
    messages_of,
    set_message,
    utc_now,
)


def dispatcher(
    sessionmaker: async_sessionmaker[AsyncSession], exchange: Any, **options: Any
) -> Dispatcher:
    return Dispatcher(
        sessionmaker,
        exchange,
        claim=100,
        batch_size=2,
        interval=0.05,
        wakeup=asyncio.Event(),
        **options,
    )


async def scheduled_mailing(engine: AsyncEngine, reconciler: Reconciler, clients: int) -> int:
    await create_clients(engine, clients)
    mailing_id = await create_mailing(engine)
    await reconciler.reconcile_mailing(mailing_id)
    return mailing_id


async def test_rows_are_committed_queued_under_the_token_before_the_publish(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    broker: Broker,
) -> None:
    mailing_id = await scheduled_mailing(ledger_db, reconciler, 4)
    seen: list[tuple[str, uuid.UUID | None, uuid.UUID | None]] = []

    class Watching:
        """Publishes through the real exchange, reading what another connection sees first."""

        async def publish(self, message: Any, routing_key: str, **kwargs: Any) -> Any:
            command = SendMessages.model_validate_json(message.body)
            rows = {m.id: m for m in await messages_of(ledger_db, mailing_id)}
            for ref in command.messages:
                seen.append((rows[ref.id].status, rows[ref.id].dispatch_token, command.token))
            return await broker.topology.send.publish(message, routing_key, **kwargs)

    await dispatcher(sessionmaker, Watching()).dispatch_once()

    assert len(seen) == 4
    assert all(status == "queued" and row == token for status, row, token in seen)
    assert len(await broker.take_commands(4)) == 2


async def test_a_failed_commit_publishes_nothing(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    broker: Broker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mailing_id = await scheduled_mailing(ledger_db, reconciler, 3)

    async def database_gone(*args: object) -> None:
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(ledger, "mark_queued", database_gone)
    with pytest.raises(OperationalError):
        await dispatcher(sessionmaker, broker.topology.send).dispatch_once()

    assert await broker.queue_depth("herald.send.commands") == 0
    assert {m.status for m in await messages_of(ledger_db, mailing_id)} == {"scheduled"}


async def test_a_copy_with_a_stale_token_takes_nothing(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    broker: Broker,
) -> None:
    await scheduled_mailing(ledger_db, reconciler, 2)
    await dispatcher(sessionmaker, broker.topology.send, lease_seconds=60).dispatch_once()
    [command] = await broker.take_commands(1)
    ids = [ref.id for ref in command.messages]

    async with ledger_db.connect() as connection:
        assert await take_messages(connection, ids, uuid.uuid4(), 60) == []
        taken = await take_messages(connection, ids, command.token, 60)
    assert sorted(state.id for state in taken) == sorted(ids)


async def test_a_lost_command_is_dispatched_again_when_its_lease_runs_out(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    broker: Broker,
) -> None:
    mailing_id = await scheduled_mailing(ledger_db, reconciler, 2)
    await dispatcher(sessionmaker, broker.topology.send).dispatch_once()
    [lost] = await broker.take_commands(1)  # taken off the queue: the command is gone
    for row in await messages_of(ledger_db, mailing_id):
        await set_message(ledger_db, row.id, lease_until=utc_now() - timedelta(seconds=1))

    waiting = Sweeper(sessionmaker, status_backlog=_returns(1))
    assert await waiting.release_leases_once() == 0  # a status event may say it was sent
    assert await Sweeper(sessionmaker, status_backlog=_returns(0)).release_leases_once() == 2
    assert {m.status for m in await messages_of(ledger_db, mailing_id)} == {"scheduled"}

    await dispatcher(sessionmaker, broker.topology.send).dispatch_once()
    [again] = await broker.take_commands(1)
    assert again.token != lost.token
    async with ledger_db.connect() as connection:
        assert await take_messages(connection, [r.id for r in lost.messages], lost.token, 60) == []
    assert await recount_mismatches(ledger_db) == []


async def test_rows_a_sender_took_are_not_released_as_unpublished(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    broker: Broker,
) -> None:
    mailing_id = await scheduled_mailing(ledger_db, reconciler, 2)
    async with sessionmaker.begin() as session:
        claimed = await ledger.claim_due(session, 10)
        command = SendMessages(
            mailing_id=mailing_id,
            messages=[{"id": c.id} for c in claimed],
            token=uuid.uuid4(),
        )
        dispatch = await ledger.mark_queued(session, [command], 60)
    async with ledger_db.connect() as connection:
        await take_messages(connection, [c.id for c in claimed], command.token, 60)

    async with sessionmaker.begin() as session:
        released = await ledger.release_unpublished(session, [command], dispatch.lease_until)

    assert released.total == 0
    assert {m.status for m in await messages_of(ledger_db, mailing_id)} == {"queued"}


async def test_a_window_wait_hands_the_row_back_only_for_the_holding_token(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    broker: Broker,
) -> None:
    mailing_id = await scheduled_mailing(ledger_db, reconciler, 2)
    await dispatcher(sessionmaker, broker.topology.send).dispatch_once()
    [command] = await broker.take_commands(1)
    first, second = (ref.id for ref in command.messages)
    opening = utc_now() + timedelta(hours=3)

    def waiting(message_id: int, token: uuid.UUID | None) -> MessageOutcome:
        return MessageOutcome(
            message_id=message_id,
            mailing_id=mailing_id,
            status=MessageStatus.scheduled,
            attempts=0,
            at=utc_now(),
            error_class="outside_window",
            next_attempt_at=opening,
            token=token,
        )

    async with sessionmaker.begin() as session:
        await ledger.apply_outcomes(
            session, [waiting(first, command.token), waiting(second, uuid.uuid4())]
        )

    rows = {m.id: m for m in await messages_of(ledger_db, mailing_id)}
    assert rows[first].status == "scheduled"
    assert rows[first].due_at == opening
    assert rows[first].dispatch_token is None
    assert rows[second].status == "queued"
    assert await recount_mismatches(ledger_db) == []


async def test_the_dispatcher_queues_no_more_than_its_bound(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
    broker: Broker,
) -> None:
    mailing_id = await scheduled_mailing(ledger_db, reconciler, 10)
    bounded = dispatcher(sessionmaker, broker.topology.send, max_queued=4)

    assert await bounded.dispatch_once() == 4
    assert await bounded.dispatch_once() == 0
    statuses = [m.status for m in await messages_of(ledger_db, mailing_id)]
    assert statuses.count("queued") == 4


def _returns(value: int) -> Any:
    async def backlog() -> int:
        return value

    return backlog
