"""Applying status outcomes: the forward rule in SQL, batching through the broker, counters."""

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from typing import Any

import aio_pika
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_common.broker.connection import publish, to_message
from herald_common.broker.topology import DEAD_LETTER_QUEUE, STATUS_EVENTS_QUEUE, STATUS_ROUTING_KEY
from herald_common.contracts import MessageOutcome, MessagesProgressed
from herald_common.domain import MessageStatus as S
from herald_scheduler.outcomes import OutcomeWriter
from herald_scheduler.reconciler import Reconciler
from herald_scheduler.repository import ledger
from herald_scheduler.sweeper import Sweeper
from herald_scheduler.transitions import outcome_applies
from tests.integration.scheduler.conftest import Broker
from tests.integration.scheduler.factories import (
    create_clients,
    create_mailing,
    insert_messages,
    messages_of,
    update_mailing,
    utc_now,
)

SENDER_STATUSES = [S.retrying, S.sent, S.failed, S.expired]


def outcome(
    message_id: int, mailing_id: int, status: S, attempts: int, **extra: Any
) -> MessageOutcome:
    return MessageOutcome(
        message_id=message_id,
        mailing_id=mailing_id,
        status=status,
        attempts=attempts,
        at=extra.pop("at", utc_now()),
        **extra,
    )


async def apply(
    sessionmaker: async_sessionmaker[AsyncSession], outcomes: list[MessageOutcome]
) -> ledger.Moves:
    async with sessionmaker.begin() as session:
        return await ledger.apply_outcomes(session, outcomes)


async def test_sql_applies_exactly_what_the_forward_rule_allows(
    ledger_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing_id = await create_mailing(ledger_db)
    cases = list(itertools.product(list(S), SENDER_STATUSES, [0, 1, 2]))
    ids = await insert_messages(ledger_db, mailing_id, [(row, 1) for row, _, _ in cases])

    outcomes = [
        outcome(message_id, mailing_id, event, attempts)
        for message_id, (_, event, attempts) in zip(ids, cases, strict=True)
    ]
    moves = await apply(sessionmaker, outcomes)

    rows = {m.id: m for m in await messages_of(ledger_db, mailing_id)}
    expected_total = 0
    for message_id, (row, event, attempts) in zip(ids, cases, strict=True):
        applies = outcome_applies(row, 1, event, attempts)
        expected_total += applies
        expected = (event.value, max(1, attempts)) if applies else (row.value, 1)
        got = (rows[message_id].status, rows[message_id].attempts)
        assert got == expected, f"{row} attempts 1 <- {event} attempts {attempts}"
    assert moves.total == expected_total


async def test_outcome_fields_are_recorded(
    ledger_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing_id = await create_mailing(ledger_db)
    retried, sent, failed = await insert_messages(
        ledger_db, mailing_id, [("queued", 0), ("queued", 0), ("queued", 0)]
    )
    at = utc_now() - timedelta(seconds=3)
    next_attempt = utc_now() + timedelta(seconds=30)
    await apply(
        sessionmaker,
        [
            outcome(
                retried,
                mailing_id,
                S.retrying,
                1,
                error_class="timeout",
                error="x" * 900,
                next_attempt_at=next_attempt,
            ),
            outcome(sent, mailing_id, S.sent, 2, at=at),
            outcome(failed, mailing_id, S.failed, 1, error_class="http_400", error="bad phone"),
        ],
    )

    rows = {m.id: m for m in await messages_of(ledger_db, mailing_id)}
    assert rows[retried].status == "retrying"
    assert rows[retried].last_error == "x" * 500
    assert (rows[retried].error_class, rows[retried].next_attempt_at) == ("timeout", next_attempt)
    assert rows[retried].finished_at is None
    assert (rows[sent].status, rows[sent].sent_at, rows[sent].finished_at) == ("sent", at, at)
    assert (rows[sent].attempts, rows[sent].last_error) == (2, None)
    assert (rows[failed].status, rows[failed].error_class) == ("failed", "http_400")
    assert rows[failed].finished_at is not None


async def test_duplicate_and_stale_outcomes_are_ignored(
    ledger_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    mailing_id = await create_mailing(ledger_db)
    (message_id,) = await insert_messages(ledger_db, mailing_id, [("queued", 0)])
    assert (await apply(sessionmaker, [outcome(message_id, mailing_id, S.retrying, 2)])).total == 1
    assert (await apply(sessionmaker, [outcome(message_id, mailing_id, S.sent, 3)])).total == 1
    (before,) = await messages_of(ledger_db, mailing_id)

    duplicate = await apply(sessionmaker, [outcome(message_id, mailing_id, S.sent, 3)])
    stale = await apply(sessionmaker, [outcome(message_id, mailing_id, S.retrying, 2)])

    (after,) = await messages_of(ledger_db, mailing_id)
    assert (duplicate.total, stale.total) == (0, 0)
    assert (after.status, after.attempts, after.sent_at, after.updated_at) == (
        "sent",
        3,
        before.sent_at,
        before.updated_at,
    )


async def test_sent_beats_expired_and_moves_the_counters(
    ledger_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    reconciler: Reconciler,
) -> None:
    await create_clients(ledger_db, 2)
    mailing_id = await create_mailing(ledger_db)
    await reconciler.reconcile_mailing(mailing_id)
    await update_mailing(ledger_db, mailing_id, end_at=utc_now() - timedelta(seconds=1))
    swept = await Sweeper(sessionmaker).sweep_once()
    assert swept.count(S.expired) == 2
    late, other = await messages_of(ledger_db, mailing_id)

    moves = await apply(sessionmaker, [outcome(late.id, mailing_id, S.sent, 1)])

    rows = {m.id: m for m in await messages_of(ledger_db, mailing_id)}
    assert moves.count(S.sent) == 1
    assert (rows[late.id].status, rows[late.id].last_error) == ("sent", None)
    assert rows[other.id].status == "expired"
    # The autouse recount checks expired -1, sent +1, first/last_sent_at.


async def test_a_sent_from_an_older_delivery_beats_a_later_retry_in_another_batch(
    ledger_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # Two copies of a command: one sender's retry (attempt 3) is applied first, the other's
    # success at attempt 2 comes in the next batch. The API accepted the message.
    mailing_id = await create_mailing(ledger_db)
    (message_id,) = await insert_messages(ledger_db, mailing_id, [("queued", 0)])
    await apply(sessionmaker, [outcome(message_id, mailing_id, S.retrying, 3)])

    moves = await apply(sessionmaker, [outcome(message_id, mailing_id, S.sent, 2)])

    (row,) = await messages_of(ledger_db, mailing_id)
    assert moves.count(S.sent) == 1
    assert (row.status, row.attempts) == ("sent", 3)
    # The autouse recount checks that the counters moved from retrying to sent.


@pytest.fixture
async def running_writer(
    sessionmaker: async_sessionmaker[AsyncSession], broker: Broker
) -> AsyncIterator[asyncio.Event]:
    channel = await broker.connection.channel()
    await channel.set_qos(prefetch_count=2000)
    queue = await channel.get_queue(STATUS_EVENTS_QUEUE)
    writer = OutcomeWriter(sessionmaker, batch_size=1000, batch_wait=0.05)
    stopping = asyncio.Event()
    task = asyncio.create_task(writer.run(queue, stopping))
    yield stopping
    stopping.set()
    await asyncio.wait_for(task, timeout=5)
    assert task.exception() is None
    await channel.close()


async def eventually(check: Callable[[], Coroutine[Any, Any, bool]], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_writer_applies_status_events_from_the_broker_and_acks_them(
    ledger_db: AsyncEngine, broker: Broker, running_writer: asyncio.Event
) -> None:
    mailing_id = await create_mailing(ledger_db)
    ids = await insert_messages(ledger_db, mailing_id, [("queued", 0)] * 250)
    for start in range(0, 250, 50):  # five commands' worth of outcomes, one with a duplicate
        chunk = ids[start : start + 50]
        event = MessagesProgressed(
            correlation_id="corr",
            outcomes=[outcome(i, mailing_id, S.sent, 1) for i in [*chunk, chunk[0]]],
        )
        await publish(
            broker.topology.status,
            to_message(event, message_id=str(event.id), correlation_id="corr"),
            STATUS_ROUTING_KEY,
        )

    async def all_sent() -> bool:
        return {m.status for m in await messages_of(ledger_db, mailing_id)} == {"sent"}

    await eventually(all_sent)
    running_writer.set()
    await asyncio.sleep(0.1)
    assert await broker.queue_depth(STATUS_EVENTS_QUEUE) == 0


async def test_unparseable_status_event_goes_to_the_dead_letter_queue(
    ledger_db: AsyncEngine, broker: Broker, running_writer: asyncio.Event
) -> None:
    await broker.topology.status.publish(
        aio_pika.Message(b'{"outcomes": "not a list"}'), routing_key=STATUS_ROUTING_KEY
    )

    async def dead_lettered() -> bool:
        return await broker.queue_depth(DEAD_LETTER_QUEUE) == 1

    await eventually(dead_lettered)


async def test_an_event_the_database_refuses_is_set_aside_and_the_rest_applied(
    ledger_db: AsyncEngine, broker: Broker, running_writer: asyncio.Event
) -> None:
    mailing_id = await create_mailing(ledger_db)
    good, bad = await insert_messages(ledger_db, mailing_id, [("queued", 0), ("queued", 0)])
    events = [
        # attempts beyond PostgreSQL's integer: the whole batch's statement fails.
        MessagesProgressed(outcomes=[outcome(bad, mailing_id, S.sent, 2**31)]),
        MessagesProgressed(outcomes=[outcome(good, mailing_id, S.sent, 1)]),
    ]
    for event in events:
        await publish(
            broker.topology.status,
            to_message(event, message_id=str(event.id), correlation_id=None),
            STATUS_ROUTING_KEY,
        )

    async def settled() -> bool:
        statuses = {m.id: m.status for m in await messages_of(ledger_db, mailing_id)}
        dead = await broker.queue_depth(DEAD_LETTER_QUEUE)
        return statuses == {good: "sent", bad: "queued"} and dead == 1

    # Generous: rendering the poison's traceback is slow on a loaded machine.
    await eventually(settled, within=30)
