"""Reconciling a mailing: filters, due_at per zone, chunking, idempotence, updates, deletion."""

import asyncio
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_scheduler.reconciler import NO_WINDOW_BEFORE_END, Reconciler
from herald_scheduler.repository import mailings
from herald_scheduler.repository.ledger import CLIENT_DELETED, CLIENT_UNMATCHED, MAILING_CANCELLED
from tests.integration.scheduler.factories import (
    cancel_mailing,
    create_client,
    create_clients,
    create_mailing,
    delete_client,
    messages_of,
    reconciled_revision,
    statuses_of,
    update_mailing,
)

# A frame well in the future, so that due times are exact and nothing gets dispatched.
START = datetime(2030, 1, 15, tzinfo=UTC)
MORNING = (time(9), time(12))


async def _directory(engine: AsyncEngine) -> dict[str, int]:
    """Clients named by what they are: operator code and tag."""
    return {
        "912-vip": await create_client(engine, operator_code="912", tag="vip"),
        "912-none": await create_client(engine, operator_code="912"),
        "913-vip": await create_client(engine, operator_code="913", tag="vip"),
        "913-regular": await create_client(engine, operator_code="913", tag="regular"),
        "914-regular": await create_client(engine, operator_code="914", tag="regular"),
    }


@pytest.mark.parametrize(
    ("operator_codes", "tags", "expected"),
    [
        (None, None, {"912-vip", "912-none", "913-vip", "913-regular", "914-regular"}),
        (["912", "914"], None, {"912-vip", "912-none", "914-regular"}),
        (None, ["vip"], {"912-vip", "913-vip"}),
        (["913"], ["vip", "regular"], {"913-vip", "913-regular"}),
        (["912"], ["regular"], set()),
    ],
    ids=["no-filter", "operator-codes", "tags", "both", "nothing-matches"],
)
async def test_materialises_exactly_the_matching_clients(
    ledger_db: AsyncEngine,
    reconciler: Reconciler,
    operator_codes: list[str] | None,
    tags: list[str] | None,
    expected: set[str],
) -> None:
    clients = await _directory(ledger_db)
    mailing_id = await create_mailing(ledger_db, operator_codes=operator_codes, tags=tags)

    result = await reconciler.reconcile_mailing(mailing_id)

    rows = await messages_of(ledger_db, mailing_id)
    assert {m.client_id for m in rows} == {clients[name] for name in expected}
    assert {m.status for m in rows} <= {"scheduled"}
    assert result is not None
    assert result.inserted == len(expected)
    assert await reconciled_revision(ledger_db, mailing_id) == 1


async def test_rows_snapshot_phone_and_time_zone(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    client_id = await create_client(ledger_db, phone="79990001122", timezone="Europe/Berlin")
    mailing_id = await create_mailing(ledger_db)
    await reconciler.reconcile_mailing(mailing_id)
    (row,) = await messages_of(ledger_db, mailing_id)
    assert (row.client_id, row.phone, row.timezone) == (client_id, "79990001122", "Europe/Berlin")


async def test_due_at_is_computed_per_time_zone(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    zones = ["UTC", "Asia/Tokyo", "Asia/Kolkata", "America/New_York"]
    await create_clients(ledger_db, 8, timezones=zones)
    mailing_id = await create_mailing(
        ledger_db, start_at=START, end_at=START + timedelta(days=2), window=MORNING
    )
    await reconciler.reconcile_mailing(mailing_id)

    due = {(m.timezone, m.due_at) for m in await messages_of(ledger_db, mailing_id)}
    assert due == {
        ("UTC", START + timedelta(hours=9)),
        ("Asia/Tokyo", START),  # 09:00 in Tokyo is midnight UTC
        ("Asia/Kolkata", START + timedelta(hours=3, minutes=30)),
        ("America/New_York", START + timedelta(hours=14)),  # 09:00 EST
    }


async def test_zone_whose_window_never_opens_is_expired_at_once(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    tokyo = await create_client(ledger_db, timezone="Asia/Tokyo")
    utc = await create_client(ledger_db, timezone="UTC")
    # Two hours from midnight UTC: morning in Tokyo, night in London.
    mailing_id = await create_mailing(
        ledger_db, start_at=START, end_at=START + timedelta(hours=2), window=MORNING
    )
    result = await reconciler.reconcile_mailing(mailing_id)

    rows = {m.client_id: m for m in await messages_of(ledger_db, mailing_id)}
    assert (rows[tokyo].status, rows[tokyo].due_at) == ("scheduled", START)
    assert (rows[utc].status, rows[utc].last_error) == ("expired", NO_WINDOW_BEFORE_END)
    assert rows[utc].finished_at is not None
    assert result is not None
    assert (result.inserted, result.expired) == (2, 1)


async def test_materialises_in_chunks_and_wakes_the_dispatcher_per_chunk(
    ledger_db: AsyncEngine,
) -> None:
    matching = await create_clients(ledger_db, 10, operator_code="912")
    await create_clients(ledger_db, 5, operator_code="999")
    matching += await create_clients(ledger_db, 3, operator_code="912")
    wakeups: list[None] = []
    reconciler = Reconciler(ledger_db, chunk_size=3, on_materialised=lambda: wakeups.append(None))
    mailing_id = await create_mailing(ledger_db, operator_codes=["912"])

    result = await reconciler.reconcile_mailing(mailing_id)

    assert set(await statuses_of(ledger_db, mailing_id)) == set(matching)
    assert result is not None
    assert result.inserted == 13
    assert len(wakeups) == 5  # 13 matching clients in chunks of 3


async def test_a_duplicate_reconcile_changes_nothing(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    await create_clients(ledger_db, 6, timezones=["UTC", "Asia/Tokyo"])
    mailing_id = await create_mailing(ledger_db, window=(time(0), time(23, 59)))
    await reconciler.reconcile_mailing(mailing_id)
    before = [vars_of(m) for m in await messages_of(ledger_db, mailing_id)]

    again = await reconciler.reconcile_mailing(mailing_id)

    assert [vars_of(m) for m in await messages_of(ledger_db, mailing_id)] == before
    assert again is not None
    assert (again.inserted, again.cancelled, again.rescheduled, again.expired) == (0, 0, 0, 0)


def vars_of(row: object) -> dict[str, object]:
    return {k: v for k, v in vars(row).items() if not k.startswith("_")}


async def test_filter_change_adds_new_matches_and_cancels_the_rest(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    clients = await _directory(ledger_db)
    mailing_id = await create_mailing(ledger_db, operator_codes=["912"])
    await reconciler.reconcile_mailing(mailing_id)

    revision = await update_mailing(ledger_db, mailing_id, filter_operator_codes=["913"])
    result = await reconciler.reconcile_mailing(mailing_id)

    rows = {m.client_id: m for m in await messages_of(ledger_db, mailing_id)}
    assert {rows[clients[n]].status for n in ("913-vip", "913-regular")} == {"scheduled"}
    for name in ("912-vip", "912-none"):
        assert (rows[clients[name]].status, rows[clients[name]].last_error) == (
            "cancelled",
            CLIENT_UNMATCHED,
        )
    assert clients["914-regular"] not in rows
    assert result is not None
    assert (result.inserted, result.cancelled) == (2, 2)
    assert await reconciled_revision(ledger_db, mailing_id) == revision


async def test_window_change_recomputes_due_at(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    await create_clients(ledger_db, 2, timezones=["UTC", "Asia/Tokyo"])
    mailing_id = await create_mailing(
        ledger_db, start_at=START, end_at=START + timedelta(days=2), window=MORNING
    )
    await reconciler.reconcile_mailing(mailing_id)

    await update_mailing(
        ledger_db, mailing_id, send_window_start=time(13), send_window_end=time(15)
    )
    result = await reconciler.reconcile_mailing(mailing_id)

    due = {(m.timezone, m.due_at) for m in await messages_of(ledger_db, mailing_id)}
    assert due == {("UTC", START + timedelta(hours=13)), ("Asia/Tokyo", START + timedelta(hours=4))}
    assert result is not None
    assert result.rescheduled == 2


async def test_frame_change_that_closes_a_zones_window_expires_its_rows(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    tokyo = await create_client(ledger_db, timezone="Asia/Tokyo")
    utc = await create_client(ledger_db, timezone="UTC")
    mailing_id = await create_mailing(
        ledger_db, start_at=START, end_at=START + timedelta(days=1), window=MORNING
    )
    await reconciler.reconcile_mailing(mailing_id)

    await update_mailing(ledger_db, mailing_id, end_at=START + timedelta(hours=2))
    await reconciler.reconcile_mailing(mailing_id)

    rows = {m.client_id: m for m in await messages_of(ledger_db, mailing_id)}
    assert rows[tokyo].status == "scheduled"
    assert (rows[utc].status, rows[utc].last_error) == ("expired", NO_WINDOW_BEFORE_END)


async def test_reconcile_cancels_rows_of_deleted_clients(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    staying, leaving = await create_clients(ledger_db, 2)
    mailing_id = await create_mailing(ledger_db)
    await reconciler.reconcile_mailing(mailing_id)
    await delete_client(ledger_db, leaving)

    await reconciler.reconcile_mailing(mailing_id)

    rows = {m.client_id: m for m in await messages_of(ledger_db, mailing_id)}
    assert rows[staying].status == "scheduled"
    assert (rows[leaving].status, rows[leaving].last_error) == ("cancelled", CLIENT_DELETED)


async def test_cancelled_mailing_cancels_every_unsent_row_and_adds_none(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    await create_clients(ledger_db, 3)
    mailing_id = await create_mailing(ledger_db)
    await reconciler.reconcile_mailing(mailing_id)
    await create_client(ledger_db)  # would match, but the mailing is gone

    revision = await cancel_mailing(ledger_db, mailing_id)
    result = await reconciler.reconcile_mailing(mailing_id)

    rows = await messages_of(ledger_db, mailing_id)
    assert len(rows) == 3
    assert {(m.status, m.last_error) for m in rows} == {("cancelled", MAILING_CANCELLED)}
    assert result is not None
    assert result.cancelled == 3
    assert await reconciled_revision(ledger_db, mailing_id) == revision


async def test_catch_up_reconciles_mailings_behind_their_revision(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    await create_clients(ledger_db, 2)
    behind = await create_mailing(ledger_db)
    second = await create_mailing(ledger_db)
    await reconciler.reconcile_mailing(second)

    assert await reconciler.reconcile_pending() == 1

    assert len(await statuses_of(ledger_db, behind)) == 2
    assert await reconciler.reconcile_pending() == 0


async def test_missing_mailing_is_ignored(ledger_db: AsyncEngine, reconciler: Reconciler) -> None:
    assert await reconciler.reconcile_mailing(424242) is None


async def test_counters_row_is_created_when_missing(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    await create_clients(ledger_db, 2)
    mailing_id = await create_mailing(ledger_db, with_counters=False)
    await reconciler.reconcile_mailing(mailing_id)
    # The autouse recount compares the counters row with the ledger.
    assert len(await statuses_of(ledger_db, mailing_id)) == 2


async def test_a_reconcile_waits_for_the_one_running_for_the_same_mailing(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    await create_clients(ledger_db, 2, timezones=["UTC"])
    mailing_id = await create_mailing(
        ledger_db, start_at=START, end_at=START + timedelta(days=2), window=MORNING
    )
    other_id = await create_mailing(ledger_db)

    async with mailings.reconciling(ledger_db, mailing_id):  # another reconcile is running
        waiting = asyncio.create_task(reconciler.reconcile_mailing(mailing_id))
        assert await reconciler.reconcile_mailing(other_id) is not None  # others go on
        await asyncio.sleep(0.3)
        assert not waiting.done()
        assert await messages_of(ledger_db, mailing_id) == []
        # The change it must see: it reads the mailing only once it holds the lock.
        await update_mailing(
            ledger_db, mailing_id, send_window_start=time(13), send_window_end=time(15)
        )

    await asyncio.wait_for(waiting, timeout=5)
    assert {m.due_at for m in await messages_of(ledger_db, mailing_id)} == {
        START + timedelta(hours=13)
    }
    assert await reconciled_revision(ledger_db, mailing_id) == 2


async def test_a_client_reconcile_waits_for_a_running_mailing_reconcile(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    mailing_id = await create_mailing(ledger_db)
    client_id = await create_client(ledger_db)

    async with mailings.reconciling(ledger_db, mailing_id):
        waiting = asyncio.create_task(reconciler.reconcile_clients([client_id]))
        await asyncio.sleep(0.3)
        assert not waiting.done()

    await asyncio.wait_for(waiting, timeout=5)
    assert await statuses_of(ledger_db, mailing_id) == {client_id: "scheduled"}


async def test_catch_up_skips_a_mailing_reconciled_while_it_waited(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    await create_clients(ledger_db, 3)
    mailing_id = await create_mailing(ledger_db, start_at=START, end_at=START + timedelta(days=1))
    first = await reconciler.reconcile_mailing(mailing_id)
    await delete_client(ledger_db, (await messages_of(ledger_db, mailing_id))[0].client_id)

    # The catch-up pass found the mailing behind, then waited for the lock while the
    # event's reconcile finished: it must not run the whole pass again.
    skipped = await reconciler.reconcile_mailing(mailing_id, only_if_behind=True)
    forced = await reconciler.reconcile_mailing(mailing_id)

    assert first is not None
    assert first.inserted == 3
    assert skipped is None
    assert forced is not None
    assert forced.cancelled == 1
