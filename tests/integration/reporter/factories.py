"""Typed factories for what the report reads: mailings, final ledger rows, their counters."""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.db.models import Mailing, Message
from herald_common.domain import MessageStatus

_clients = itertools.count(1)

_STATUSES = [s.value for s in MessageStatus]
_COLUMNS = ", ".join(_STATUSES)
_COUNTS = ", ".join(f"count(m.id) FILTER (WHERE m.status = '{s}')" for s in _STATUSES)
_UPDATES = ", ".join(f"{s} = excluded.{s}" for s in _STATUSES)
# As the scheduler keeps them: every mailing's counters equal a recount of its messages.
_REBUILD_COUNTERS = f"""
    INSERT INTO mailing_counters AS k
        (mailing_id, {_COLUMNS}, attempts, first_sent_at, last_sent_at)
    SELECT g.id, {_COUNTS}, coalesce(sum(m.attempts), 0),
           min(m.sent_at) FILTER (WHERE m.status = 'sent'),
           max(m.sent_at) FILTER (WHERE m.status = 'sent')
    FROM mailings g LEFT JOIN messages m ON m.mailing_id = g.id
    GROUP BY g.id
    ON CONFLICT (mailing_id) DO UPDATE SET
        {_UPDATES}, attempts = excluded.attempts,
        first_sent_at = excluded.first_sent_at, last_sent_at = excluded.last_sent_at
"""  # noqa: S608 (built from the status names only)


@dataclass(frozen=True)
class Seed:
    """One ledger row: its status now, and when it reached it (None while unsent)."""

    status: MessageStatus
    finished_at: datetime | None = None
    attempts: int = 1
    error_class: str | None = None


async def create_mailing(
    engine: AsyncEngine,
    *,
    start_at: datetime,
    end_at: datetime,
    text_: str = "Hello from herald",
    cancelled_at: datetime | None = None,
) -> int:
    async with engine.begin() as connection:
        mailing_id: int = (
            await connection.execute(
                insert(Mailing)
                .values(text=text_, start_at=start_at, end_at=end_at, cancelled_at=cancelled_at)
                .returning(Mailing.id)
            )
        ).scalar_one()
    return mailing_id


async def add_messages(engine: AsyncEngine, mailing_id: int, seeds: Sequence[Seed]) -> None:
    """Ledger rows as the scheduler leaves them; the counters are rebuilt to match."""
    rows = []
    for seed in seeds:
        client = next(_clients)
        final = seed.status.is_final
        rows.append(
            {
                "mailing_id": mailing_id,
                "client_id": client,
                "phone": f"79{client:09d}",
                "timezone": "UTC",
                "status": seed.status.value,
                "due_at": seed.finished_at or datetime.fromisoformat("2025-01-01T00:00:00+00:00"),
                "attempts": seed.attempts,
                "error_class": seed.error_class,
                "sent_at": seed.finished_at if seed.status is MessageStatus.sent else None,
                "finished_at": seed.finished_at if final else None,
            }
        )
    if rows:
        async with engine.begin() as connection:
            await connection.execute(insert(Message), rows)
    await rebuild_counters(engine)


async def rebuild_counters(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text(_REBUILD_COUNTERS))


async def set_origin(engine: AsyncEngine, first_started_at: datetime) -> None:
    """Pretend the reporter first started then."""
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM report_origin"))
        await connection.execute(
            text("INSERT INTO report_origin (first_started_at) VALUES (:at)"),
            {"at": first_started_at},
        )


async def claim_rows(engine: AsyncEngine) -> dict[str, dict[str, object]]:
    """report_date (ISO) -> the claim row."""
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT * FROM report_claims ORDER BY report_date"))
        return {row.report_date.isoformat(): dict(row._mapping) for row in rows}


async def expire_leases(engine: AsyncEngine) -> None:
    """Let every claim's lease run out now (a holder that died, time passing)."""
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE report_claims SET lease_until = now() - interval '1 second'")
        )
