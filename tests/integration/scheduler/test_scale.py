"""Reconciling at scale: bounded locks and batches, and the mailing's terms over held rows.

Big ledgers are built with set-based SQL (``generate_series``), as a bulk import would,
so that the tests spend their time in the reconcile and not in setting up.
"""

import asyncio
import random
import time as clock
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.domain import MessageStatus
from herald_scheduler.reconciler import (
    MAILINGS_PER_TRANSACTION,
    NO_WINDOW_BEFORE_END,
    ROWS_PER_TRANSACTION,
    Reconciler,
)
from tests.integration.scheduler.factories import (
    create_client,
    create_clients,
    create_mailing,
    messages_of,
    rebuild_counters,
    set_message,
    update_client,
    update_mailing,
)

START = datetime(2030, 1, 15, tzinfo=UTC)
MORNING = (time(9), time(12))
AFTERNOON = (time(13), time(15))

# Two client reconciles sharing a lock per mailing at once would need 20,000 slots of
# PostgreSQL's lock table: more than its defaults hold (64 x connections, plus slack).
LIVE_MAILINGS = 10_000
# About 50 s on a two-core machine, 20 s of which build the ledger.
BIG_MAILING_ROWS = 1_000_000
# The ledger writer's wait for a row lock, beyond which a reconcile blocks it for too long.
WRITER_LOCK_TIMEOUT = "2s"


async def _create_mailings(engine: AsyncEngine, count: int) -> None:
    """``count`` mailings for every client with a morning window, and their counters rows."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                """
                WITH created AS (
                    INSERT INTO mailings (text, start_at, end_at, send_window_start,
                                          send_window_end, correlation_id)
                    SELECT 'Hello from herald', CAST(:start_at AS timestamptz),
                           CAST(:end_at AS timestamptz), CAST(:opens AS time),
                           CAST(:closes AS time), 'test-scale'
                    FROM generate_series(1, :count)
                    RETURNING id
                )
                INSERT INTO mailing_counters (mailing_id) SELECT id FROM created
                """
            ),
            {
                "count": count,
                "start_at": START,
                "end_at": START + timedelta(days=2),
                "opens": MORNING[0],
                "closes": MORNING[1],
            },
        )


@dataclass
class AdvisoryLockSampler:
    """The most advisory locks any one connection to the test database held, sampled."""

    engine: AsyncEngine
    most: int = 0

    async def run(self, done: asyncio.Event) -> None:
        async with self.engine.connect() as connection:
            while not done.is_set():
                result = await connection.execute(
                    text(
                        "SELECT coalesce(max(n), 0) FROM ("
                        " SELECT count(*) AS n FROM pg_locks"
                        " WHERE locktype = 'advisory' AND database ="
                        " (SELECT oid FROM pg_database WHERE datname = current_database())"
                        " GROUP BY pid) per_connection"
                    )
                )
                self.most = max(self.most, int(result.scalar_one()))
                await connection.commit()
                await asyncio.sleep(0.01)


async def test_clients_matching_ten_thousand_mailings_are_reconciled(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    """Two event consumers reconcile a client each, both in every one of the mailings."""
    await _create_mailings(ledger_db, LIVE_MAILINGS)
    clients = await create_clients(ledger_db, 2)
    sampler = AdvisoryLockSampler(ledger_db)
    done = asyncio.Event()
    sampling = asyncio.create_task(sampler.run(done))

    try:
        joined = await asyncio.gather(*(reconciler.reconcile_clients([c]) for c in clients))
        for client_id in clients:
            await update_client(ledger_db, client_id, timezone="Asia/Tokyo")
        moved = await asyncio.gather(*(reconciler.reconcile_clients([c]) for c in clients))
    finally:
        done.set()
        await sampling

    assert [result.inserted for result in joined] == [LIVE_MAILINGS, LIVE_MAILINGS]
    # 09:00 in Tokyo is midnight UTC: every row moves to the start of the mailings.
    assert [result.rescheduled for result in moved] == [LIVE_MAILINGS, LIVE_MAILINGS]
    async with ledger_db.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT client_id, count(DISTINCT mailing_id), min(due_at), max(due_at)"
                " FROM messages WHERE status = 'scheduled' GROUP BY client_id ORDER BY client_id"
            )
        )
        assert [tuple(row) for row in rows] == [
            (client_id, LIVE_MAILINGS, START, START) for client_id in clients
        ]
    assert 0 < sampler.most <= MAILINGS_PER_TRANSACTION


async def _create_big_mailing(engine: AsyncEngine, rows: int) -> int:
    """A reconciled mailing of ``rows`` scheduled messages, half on operator 912, half on 913."""
    mailing_id = await create_mailing(
        engine,
        start_at=START,
        end_at=START + timedelta(days=2),
        operator_codes=["912", "913"],
        window=MORNING,
    )
    async with engine.begin() as connection:
        await connection.execute(
            text(
                """
                INSERT INTO clients (phone, operator_code, timezone)
                SELECT '78' || lpad(i::text, 9, '0'), CASE WHEN i % 2 = 0 THEN '912' ELSE '913' END,
                       'UTC'
                FROM generate_series(1, :rows) AS i
                """
            ),
            {"rows": rows},
        )
        await connection.execute(
            text(
                """
                INSERT INTO messages (mailing_id, client_id, phone, timezone, status, due_at)
                SELECT :mailing_id, c.id, c.phone, c.timezone, 'scheduled',
                       CAST(:due_at AS timestamptz)
                FROM clients c ORDER BY c.id
                """
            ),
            {"mailing_id": mailing_id, "due_at": START + timedelta(hours=9)},
        )
        await connection.execute(
            text("UPDATE mailings SET reconciled_revision = revision WHERE id = :id"),
            {"id": mailing_id},
        )
    await rebuild_counters(engine, mailing_id)
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE clients, messages"))
    return mailing_id


@dataclass
class LockProbe:
    """Takes one of the mailing's rows as the ledger writer does, over and over."""

    engine: AsyncEngine
    ids: list[int]
    waits: list[float] = field(default_factory=list)
    timeouts: int = 0

    async def run(self, done: asyncio.Event) -> None:
        while not done.is_set():
            started = clock.perf_counter()
            try:
                async with self.engine.begin() as connection:
                    await connection.execute(
                        text(f"SET LOCAL lock_timeout = '{WRITER_LOCK_TIMEOUT}'")
                    )
                    await connection.execute(
                        text("SELECT id FROM messages WHERE id = :id FOR UPDATE"),
                        {"id": random.choice(self.ids)},
                    )
            except DBAPIError:  # lock_timeout: the writer would have been blocked
                self.timeouts += 1
            self.waits.append(clock.perf_counter() - started)
            await asyncio.sleep(0.05)


async def _rows_per_transaction(engine: AsyncEngine, mailing_id: int, status: str) -> int:
    """The most rows in ``status`` that any one transaction wrote last (xmin)."""
    async with engine.connect() as connection:
        result = await connection.execute(
            text(
                "SELECT coalesce(max(n), 0) FROM ("
                " SELECT count(*) AS n FROM messages"
                " WHERE mailing_id = :mailing_id AND status = :status"
                " GROUP BY xmin::text) per_transaction"
            ),
            {"mailing_id": mailing_id, "status": status},
        )
        return int(result.scalar_one())


@pytest.mark.timeout(240)
async def test_a_change_to_a_million_row_mailing_is_applied_in_bounded_batches(
    ledger_db: AsyncEngine,
) -> None:
    """A filter change cancels half the rows and a window change moves the other half.

    The writer's row locks must never wait for seconds while that runs, and no
    transaction may write more than a batch of rows.
    """
    mailing_id = await _create_big_mailing(ledger_db, BIG_MAILING_ROWS)
    # Materialising in the service's chunks of 50,000: the fixture's 1,000 would double
    # the time spent re-checking the existing rows.
    reconciler = Reconciler(ledger_db, chunk_size=50_000)
    async with ledger_db.connect() as connection:
        ids = list(
            (
                await connection.execute(
                    text("SELECT id FROM messages WHERE mailing_id = :m"), {"m": mailing_id}
                )
            ).scalars()
        )
    revision = await update_mailing(
        ledger_db,
        mailing_id,
        filter_operator_codes=["912"],
        send_window_start=AFTERNOON[0],
        send_window_end=AFTERNOON[1],
    )

    probe = LockProbe(ledger_db, ids)
    done = asyncio.Event()
    probing = asyncio.create_task(probe.run(done))
    started = clock.perf_counter()
    try:
        result = await reconciler.reconcile_mailing(mailing_id)
    finally:
        done.set()
        await probing
    took = clock.perf_counter() - started
    print(
        f"reconciled {BIG_MAILING_ROWS} rows in {took:.1f}s;"
        f" writer probes {len(probe.waits)}, longest wait {max(probe.waits, default=0):.3f}s"
    )

    assert result is not None
    assert (result.inserted, result.cancelled, result.rescheduled) == (
        0,
        BIG_MAILING_ROWS // 2,
        BIG_MAILING_ROWS // 2,
    )
    assert probe.timeouts == 0
    assert probe.waits
    for status in ("cancelled", "scheduled"):
        most = await _rows_per_transaction(ledger_db, mailing_id, status)
        assert 0 < most <= ROWS_PER_TRANSACTION
    async with ledger_db.connect() as connection:
        counted = await connection.execute(
            text(
                "SELECT status, due_at, count(*) FROM messages WHERE mailing_id = :m"
                " GROUP BY status, due_at"
            ),
            {"m": mailing_id},
        )
        assert {tuple(row) for row in counted} == {
            ("cancelled", START + timedelta(hours=9), BIG_MAILING_ROWS // 2),
            ("scheduled", START + timedelta(hours=13), BIG_MAILING_ROWS // 2),
        }
        mark = await connection.execute(
            text("SELECT reconciled_revision FROM mailings WHERE id = :m"), {"m": mailing_id}
        )
        assert mark.scalar_one() == revision
    # The autouse fixture then checks mailing_counters against a recount.


HELD = [MessageStatus.queued, MessageStatus.retrying]


async def _hold(engine: AsyncEngine, message_id: int, status: MessageStatus) -> None:
    """Put a row where a dispatch holds it: queued, or retrying after a deferral."""
    await set_message(
        engine,
        message_id,
        status=status.value,
        attempts=1 if status is MessageStatus.retrying else 0,
        queued_at=START,
        next_attempt_at=START + timedelta(hours=1) if status is MessageStatus.retrying else None,
        lease_until=START + timedelta(hours=2),
    )


async def test_a_mailing_change_expires_held_rows_of_zones_left_without_a_window(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    await create_clients(ledger_db, 3, timezones=["UTC"])
    await create_clients(ledger_db, 3, timezones=["Asia/Tokyo"])
    mailing_id = await create_mailing(
        ledger_db, start_at=START, end_at=START + timedelta(days=1), window=MORNING
    )
    await reconciler.reconcile_mailing(mailing_id)
    by_zone: dict[str, list[int]] = {}
    for row in await messages_of(ledger_db, mailing_id):
        by_zone.setdefault(row.timezone, []).append(row.id)
    for zone_rows in by_zone.values():
        for message_id, status in zip(zone_rows[1:], HELD, strict=True):
            await _hold(ledger_db, message_id, status)
    await rebuild_counters(ledger_db, mailing_id)

    # Two hours from midnight UTC, 10:00 to 12:00: an hour of it in Tokyo, none in London.
    await update_mailing(
        ledger_db, mailing_id, end_at=START + timedelta(hours=2), send_window_start=time(10)
    )
    result = await reconciler.reconcile_mailing(mailing_id)

    rows = {m.id: m for m in await messages_of(ledger_db, mailing_id)}
    for message_id in by_zone["UTC"]:
        assert (rows[message_id].status, rows[message_id].last_error) == (
            "expired",
            NO_WINDOW_BEFORE_END,
        )
        assert rows[message_id].finished_at is not None
        assert rows[message_id].next_attempt_at is None
    # Tokyo's window opens an hour later: its scheduled row moves, the rows a dispatch
    # holds do not (their senders defer them under the live terms).
    assert [(rows[i].status, rows[i].due_at) for i in by_zone["Asia/Tokyo"]] == [
        ("scheduled", START + timedelta(hours=1)),
        ("queued", START),
        ("retrying", START),
    ]
    assert result is not None
    assert (result.expired, result.rescheduled) == (3, 1)


async def test_a_client_moving_to_a_zone_without_a_window_expires_its_held_rows(
    ledger_db: AsyncEngine, reconciler: Reconciler
) -> None:
    client_id = await create_client(ledger_db, timezone="Asia/Tokyo")
    mailing_id = await create_mailing(
        ledger_db, start_at=START, end_at=START + timedelta(hours=2), window=MORNING
    )
    await reconciler.reconcile_clients([client_id])
    (row,) = await messages_of(ledger_db, mailing_id)
    await _hold(ledger_db, row.id, MessageStatus.queued)
    await rebuild_counters(ledger_db, mailing_id)

    await update_client(ledger_db, client_id, timezone="UTC")
    result = await reconciler.reconcile_clients([client_id])

    (row,) = await messages_of(ledger_db, mailing_id)
    assert (row.status, row.timezone, row.last_error) == ("expired", "UTC", NO_WINDOW_BEFORE_END)
    assert result.expired == 1
