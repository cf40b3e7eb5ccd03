"""The client journal: a client change whose event never arrives is still reconciled.

Clients are changed through the api's own service layer, which writes the journal entry
in the change's transaction as the REST API does; no event is delivered unless a test
says so.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from herald_api.clients import service
from herald_api.clients.importer import ImportFormat, import_clients
from herald_api.clients.schemas import ClientCreate, ClientUpdate
from herald_common.broker.connection import publish, to_message
from herald_common.broker.topology import SCHEDULER_EVENTS_QUEUE
from herald_common.contracts import ClientsChanged, EventType
from herald_scheduler.client_catch_up import ClientJournalReconciler, run_client_catch_up
from herald_scheduler.events import DomainEventConsumer
from herald_scheduler.reconciler import ClientsReconciled, Reconciler
from herald_scheduler.repository import client_changes
from herald_scheduler.repository.ledger import CLIENT_DELETED, CLIENT_UNMATCHED
from tests.integration.scheduler.conftest import Broker
from tests.integration.scheduler.factories import create_mailing, messages_of, statuses_of

Sessions = async_sessionmaker[AsyncSession]
CATCH_UP_INTERVAL = 0.1


@pytest.fixture
def journaling(ledger_db: AsyncEngine) -> ClientJournalReconciler:
    return ClientJournalReconciler(ledger_db, chunk_size=1000)


async def eventually(check: Callable[[], Coroutine[Any, Any, bool]], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def catch_up(journaling: ClientJournalReconciler) -> AsyncIterator[None]:
    """The catch-up loop, with no grace period and a short interval."""
    stopping = asyncio.Event()
    task = asyncio.create_task(
        run_client_catch_up(journaling, stopping, CATCH_UP_INTERVAL, grace=0.0)
    )
    yield
    stopping.set()
    await asyncio.wait_for(task, timeout=5)


async def create(sessionmaker: Sessions, phone: str, **fields: Any) -> int:
    async with sessionmaker.begin() as session:
        client = await service.create(session, ClientCreate(phone=phone, timezone="UTC", **fields))
    return client.id


async def update(sessionmaker: Sessions, client_id: int, **changes: Any) -> None:
    async with sessionmaker.begin() as session:
        await service.update(session, client_id, ClientUpdate(**changes))


async def delete(sessionmaker: Sessions, client_id: int) -> None:
    async with sessionmaker.begin() as session:
        await service.delete(session, client_id)


async def journal(engine: AsyncEngine) -> dict[int, int]:
    """client_id -> revision of every journal entry."""
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT client_id, revision FROM client_changes"))
        return {row.client_id: row.revision for row in rows}


async def journal_emptied(engine: AsyncEngine) -> None:
    """Wait until the catch-up has reconciled and cleared every entry."""

    async def empty() -> bool:
        return await journal(engine) == {}

    await eventually(empty, within=CATCH_UP_INTERVAL * 20)


def caught_up_total() -> float:
    return REGISTRY.get_sample_value("herald_clients_caught_up_total") or 0.0


async def test_a_deleted_client_whose_event_is_lost_is_cancelled_by_the_catch_up(
    ledger_db: AsyncEngine,
    sessionmaker: Sessions,
    journaling: ClientJournalReconciler,
) -> None:
    mailing_id = await create_mailing(ledger_db)
    client_id = await create(sessionmaker, "79000000001")
    other = await create(sessionmaker, "79000000002")
    await journaling.reconcile_clients([client_id, other])
    assert await journal(ledger_db) == {}

    await delete(sessionmaker, client_id)
    assert list(await journal(ledger_db)) == [client_id]
    # Nothing but the catch-up would ever cancel it: no client.deleted arrives.
    assert (await statuses_of(ledger_db, mailing_id))[client_id] == "scheduled"
    before = caught_up_total()

    stopping = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(
            run_client_catch_up(journaling, stopping, CATCH_UP_INTERVAL, grace=0.0)
        )
        try:
            await journal_emptied(ledger_db)
        finally:
            stopping.set()
            await asyncio.wait_for(task, timeout=5)

    rows = {m.client_id: m for m in await messages_of(ledger_db, mailing_id)}
    assert (rows[client_id].status, rows[client_id].last_error) == ("cancelled", CLIENT_DELETED)
    assert rows[other].status == "scheduled"
    assert caught_up_total() - before == 1
    assert {"event": "clients.caught_up", "count": 1, "log_level": "info"} in logs


@pytest.mark.usefixtures("catch_up")
async def test_an_update_whose_event_is_lost_stops_the_client_matching(
    ledger_db: AsyncEngine,
    sessionmaker: Sessions,
    journaling: ClientJournalReconciler,
) -> None:
    vip = await create_mailing(ledger_db, tags=["vip"])
    client_id = await create(sessionmaker, "79000000001", tag="vip")
    await journaling.reconcile_clients([client_id])
    assert await statuses_of(ledger_db, vip) == {client_id: "scheduled"}

    await update(sessionmaker, client_id, tag="regular")

    await journal_emptied(ledger_db)
    (row,) = await messages_of(ledger_db, vip)
    assert (row.status, row.last_error) == ("cancelled", CLIENT_UNMATCHED)


async def _body(*lines: bytes) -> AsyncIterator[bytes]:
    for line in lines:
        yield line


@pytest.mark.usefixtures("catch_up")
async def test_an_import_chunk_whose_event_is_lost_is_materialised_by_the_catch_up(
    ledger_db: AsyncEngine, sessionmaker: Sessions
) -> None:
    mailing_id = await create_mailing(ledger_db, tags=["new"])
    existing = await create(sessionmaker, "79000000001", tag="old")
    await journal_emptied(ledger_db)
    assert await statuses_of(ledger_db, mailing_id) == {}

    result = await import_clients(
        _body(b"phone,timezone,tag\n", b"79000000001,UTC,new\n", b"79000000002,UTC,new\n"),
        import_format=ImportFormat.csv,
        upsert=True,
        sessionmaker=sessionmaker,
        on_commit=lambda: None,
    )
    assert (result.created, result.updated) == (1, 1)

    await journal_emptied(ledger_db)
    statuses = await statuses_of(ledger_db, mailing_id)
    assert len(statuses) == 2
    assert existing in statuses
    assert set(statuses.values()) == {"scheduled"}


async def test_the_event_path_empties_the_journal(
    ledger_db: AsyncEngine,
    sessionmaker: Sessions,
    journaling: ClientJournalReconciler,
    broker: Broker,
) -> None:
    mailing_id = await create_mailing(ledger_db)
    client_id = await create(sessionmaker, "79000000001")
    assert list(await journal(ledger_db)) == [client_id]
    channel = await broker.connection.channel()
    queue = await channel.get_queue(SCHEDULER_EVENTS_QUEUE)
    stopping = asyncio.Event()
    consumer = DomainEventConsumer(journaling, concurrency=2)
    task = asyncio.create_task(consumer.run(queue, stopping))
    try:
        event = ClientsChanged(type=EventType.client_created, client_ids=[client_id])
        message = to_message(event, message_id=str(event.id), correlation_id=None)
        await publish(broker.topology.events, message, event.type.value)

        async def emptied() -> bool:
            return await journal(ledger_db) == {}

        await eventually(emptied)
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout=5)
        await channel.close()
    assert await statuses_of(ledger_db, mailing_id) == {client_id: "scheduled"}


async def test_entries_younger_than_the_grace_period_are_left_to_the_event_path(
    ledger_db: AsyncEngine,
    sessionmaker: Sessions,
    journaling: ClientJournalReconciler,
) -> None:
    mailing_id = await create_mailing(ledger_db)
    client_id = await create(sessionmaker, "79000000001")

    assert await journaling.catch_up_clients(grace=60.0) == 0

    assert list(await journal(ledger_db)) == [client_id]
    assert await statuses_of(ledger_db, mailing_id) == {}


async def test_the_catch_up_takes_the_oldest_entries_first_a_chunk_at_a_time(
    ledger_db: AsyncEngine,
    sessionmaker: Sessions,
    journaling: ClientJournalReconciler,
) -> None:
    mailing_id = await create_mailing(ledger_db)
    client_ids = [await create(sessionmaker, f"7900000000{n}") for n in range(1, 6)]
    # Pending for 1, 2, ... 5 minutes: the oldest entries are not the lowest ids.
    async with ledger_db.begin() as connection:
        for age, client_id in enumerate(client_ids, start=1):
            await connection.execute(
                text(
                    "UPDATE client_changes SET pending_since = now() - :age WHERE client_id = :id"
                ),
                {"age": timedelta(minutes=age), "id": client_id},
            )

    assert await journaling.catch_up_clients(grace=30.0, limit=2) == 2

    oldest = set(client_ids[3:])
    assert set(await statuses_of(ledger_db, mailing_id)) == oldest
    assert set(await journal(ledger_db)) == set(client_ids) - oldest
    assert await journaling.catch_up_clients(grace=30.0, limit=2) == 2
    assert await journaling.catch_up_clients(grace=30.0, limit=2) == 1
    assert await journaling.catch_up_clients(grace=30.0, limit=2) == 0
    assert set(await statuses_of(ledger_db, mailing_id)) == set(client_ids)
    assert await journal(ledger_db) == {}


async def test_entries_a_pass_took_wait_a_grace_period_before_another_takes_them(
    ledger_db: AsyncEngine,
    sessionmaker: Sessions,
    journaling: ClientJournalReconciler,
) -> None:
    """Another replica's pass does not repeat this one's work; a pass that died mid-reconcile
    leaves its entries to the next one after the grace period."""
    client_id = await create(sessionmaker, "79000000001")
    async with sessionmaker.begin() as session:
        assert await client_changes.take_due(session, 0.0, 10) == [client_id]

    assert await journaling.catch_up_clients(grace=30.0) == 0
    assert await journaling.catch_up_clients(grace=0.0) == 1
    assert await journal(ledger_db) == {}


class _ChangedDuringReconcile(Reconciler):
    """Runs ``change`` once its reconcile has read and written everything."""

    change: Callable[[], Awaitable[None]] | None = None

    async def reconcile_clients(self, client_ids: Sequence[int]) -> ClientsReconciled:
        outcome = await super().reconcile_clients(client_ids)
        if self.change is not None:
            change, self.change = self.change, None
            await change()
        return outcome


class _RacedReconciler(ClientJournalReconciler, _ChangedDuringReconcile):
    """The journal's reconcile around a reconcile that a client change overtakes."""


async def test_a_change_during_a_reconcile_keeps_its_entry_and_is_caught_up(
    ledger_db: AsyncEngine, sessionmaker: Sessions
) -> None:
    mailing_id = await create_mailing(ledger_db)
    client_id = await create(sessionmaker, "79000000001")
    raced = _RacedReconciler(ledger_db, chunk_size=1000)
    created_revision = (await journal(ledger_db))[client_id]

    async def delete_it() -> None:
        await delete(sessionmaker, client_id)

    raced.change = delete_it
    await raced.reconcile_clients([client_id])

    # The reconcile read the client before it was deleted: its entry must stay.
    assert await statuses_of(ledger_db, mailing_id) == {client_id: "scheduled"}
    entries = await journal(ledger_db)
    assert list(entries) == [client_id]
    assert entries[client_id] > created_revision

    assert await raced.catch_up_clients(grace=0.0) == 1
    assert await statuses_of(ledger_db, mailing_id) == {client_id: "cancelled"}
    assert await journal(ledger_db) == {}
