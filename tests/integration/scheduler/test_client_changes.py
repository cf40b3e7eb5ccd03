"""Reconciling clients against running mailings: created, updated, deleted."""

from datetime import UTC, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from herald_scheduler.reconciler import Reconciler
from herald_scheduler.repository.ledger import CLIENT_DELETED, CLIENT_UNMATCHED
from tests.integration.scheduler.factories import (
    cancel_mailing,
    create_client,
    create_mailing,
    delete_client,
    messages_of,
    statuses_of,
    update_client,
    utc_now,
)

START = datetime(2030, 1, 15, tzinfo=UTC)


async def test_new_client_joins_every_running_mailing_it_matches(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    vip = await create_mailing(ledger_db, tags=["vip"])
    everyone = await create_mailing(ledger_db)
    upcoming = await create_mailing(ledger_db, start_at=START, end_at=START + timedelta(days=1))
    other_operator = await create_mailing(ledger_db, operator_codes=["999"])
    ended = await create_mailing(
        ledger_db, start_at=utc_now() - timedelta(hours=2), end_at=utc_now() - timedelta(hours=1)
    )
    cancelled = await create_mailing(ledger_db)
    await cancel_mailing(ledger_db, cancelled)

    client_id = await create_client(ledger_db, tag="vip")
    result = await reconciler.reconcile_clients([client_id])

    for mailing_id in (vip, everyone, upcoming):
        assert await statuses_of(ledger_db, mailing_id) == {client_id: "scheduled"}
    for mailing_id in (other_operator, ended, cancelled):
        assert await statuses_of(ledger_db, mailing_id) == {}
    assert result.inserted == 3


async def test_a_duplicate_client_event_changes_nothing(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    mailing_id = await create_mailing(ledger_db)
    client_id = await create_client(ledger_db)
    await reconciler.reconcile_clients([client_id])
    before = await messages_of(ledger_db, mailing_id)

    again = await reconciler.reconcile_clients([client_id, client_id])

    after = await messages_of(ledger_db, mailing_id)
    assert [(m.id, m.status, m.due_at, m.updated_at) for m in after] == [
        (m.id, m.status, m.due_at, m.updated_at) for m in before
    ]
    assert (again.inserted, again.cancelled, again.rescheduled) == (0, 0, 0)


async def test_client_that_stops_matching_is_cancelled_and_can_match_again_elsewhere(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    vip = await create_mailing(ledger_db, tags=["vip"])
    regular = await create_mailing(ledger_db, tags=["regular"])
    client_id = await create_client(ledger_db, tag="vip")
    await reconciler.reconcile_clients([client_id])

    await update_client(ledger_db, client_id, tag="regular")
    result = await reconciler.reconcile_clients([client_id])

    (vip_row,) = await messages_of(ledger_db, vip)
    assert (vip_row.status, vip_row.last_error) == ("cancelled", CLIENT_UNMATCHED)
    assert await statuses_of(ledger_db, regular) == {client_id: "scheduled"}
    assert (result.inserted, result.cancelled) == (1, 1)


async def test_phone_and_time_zone_changes_update_the_snapshot_and_due_at(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    mailing_id = await create_mailing(
        ledger_db, start_at=START, end_at=START + timedelta(days=2), window=(time(9), time(12))
    )
    client_id = await create_client(ledger_db, timezone="UTC")
    await reconciler.reconcile_clients([client_id])

    await update_client(ledger_db, client_id, timezone="Asia/Tokyo", phone="79995554433")
    result = await reconciler.reconcile_clients([client_id])

    (row,) = await messages_of(ledger_db, mailing_id)
    assert (row.phone, row.timezone, row.due_at) == ("79995554433", "Asia/Tokyo", START)
    assert result.rescheduled == 1


async def test_deleted_client_has_its_unsent_messages_cancelled(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    first = await create_mailing(ledger_db)
    second = await create_mailing(ledger_db)
    client_id = await create_client(ledger_db)
    other = await create_client(ledger_db)
    await reconciler.reconcile_clients([client_id, other])

    await delete_client(ledger_db, client_id)
    result = await reconciler.reconcile_clients([client_id])

    for mailing_id in (first, second):
        rows = {m.client_id: m for m in await messages_of(ledger_db, mailing_id)}
        assert (rows[client_id].status, rows[client_id].last_error) == (
            "cancelled",
            CLIENT_DELETED,
        )
        assert rows[other].status == "scheduled"
    assert result.cancelled == 2
