"""Typed factories for the rows the scheduler reads: clients and mailings, inserted directly."""

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.db.models import Client, Mailing, MailingCounters, Message

_phones = itertools.count(1)


def utc_now() -> datetime:
    return datetime.now(UTC)


def next_phone() -> str:
    return f"79{next(_phones):09d}"


async def create_client(
    engine: AsyncEngine,
    *,
    operator_code: str = "912",
    tag: str | None = None,
    timezone: str = "UTC",
    phone: str | None = None,
) -> int:
    async with engine.begin() as connection:
        client_id: int = (
            await connection.execute(
                insert(Client)
                .values(
                    phone=phone or next_phone(),
                    operator_code=operator_code,
                    tag=tag,
                    timezone=timezone,
                )
                .returning(Client.id)
            )
        ).scalar_one()
    return client_id


async def create_clients(
    engine: AsyncEngine,
    count: int,
    *,
    operator_code: str = "912",
    tag: str | None = None,
    timezones: Sequence[str] = ("UTC",),
) -> list[int]:
    """Many clients in one statement; time zones assigned round-robin."""
    rows = [
        {
            "phone": next_phone(),
            "operator_code": operator_code,
            "tag": tag,
            "timezone": timezones[i % len(timezones)],
        }
        for i in range(count)
    ]
    async with engine.begin() as connection:
        result = await connection.execute(insert(Client).returning(Client.id), rows)
        return sorted(result.scalars())


async def update_client(engine: AsyncEngine, client_id: int, **values: object) -> None:
    async with engine.begin() as connection:
        await connection.execute(update(Client).where(Client.id == client_id).values(**values))


async def delete_client(engine: AsyncEngine, client_id: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM clients WHERE id = :id"), {"id": client_id})


async def create_mailing(
    engine: AsyncEngine,
    *,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    operator_codes: list[str] | None = None,
    tags: list[str] | None = None,
    window: tuple[time, time] | None = None,
    correlation_id: str | None = "test-correlation",
    with_counters: bool = True,
) -> int:
    """A running mailing by default: started a minute ago, ending in an hour."""
    now = utc_now()
    async with engine.begin() as connection:
        mailing_id: int = (
            await connection.execute(
                insert(Mailing)
                .values(
                    text="Hello from herald",
                    start_at=start_at or now - timedelta(minutes=1),
                    end_at=end_at or now + timedelta(hours=1),
                    filter_operator_codes=operator_codes,
                    filter_tags=tags,
                    send_window_start=window[0] if window else None,
                    send_window_end=window[1] if window else None,
                    correlation_id=correlation_id,
                )
                .returning(Mailing.id)
            )
        ).scalar_one()
        if with_counters:
            # As the API does: the counters row is created with the mailing.
            await connection.execute(insert(MailingCounters).values(mailing_id=mailing_id))
    return mailing_id


async def update_mailing(engine: AsyncEngine, mailing_id: int, **values: object) -> int:
    """Change a mailing as the API does: bump its revision. Returns the new revision."""
    async with engine.begin() as connection:
        revision: int = (
            await connection.execute(
                update(Mailing)
                .where(Mailing.id == mailing_id)
                .values(**values, revision=Mailing.revision + 1, updated_at=func.now())
                .returning(Mailing.revision)
            )
        ).scalar_one()
    return revision


async def cancel_mailing(engine: AsyncEngine, mailing_id: int) -> int:
    return await update_mailing(engine, mailing_id, cancelled_at=func.now())


async def messages_of(engine: AsyncEngine, mailing_id: int) -> list[Message]:
    """The mailing's ledger rows, by client id."""
    async with engine.connect() as connection:
        result = await connection.execute(
            select(Message.__table__)
            .where(Message.mailing_id == mailing_id)
            .order_by(Message.client_id)
        )
        return [Message(**row._mapping) for row in result]


async def statuses_of(engine: AsyncEngine, mailing_id: int) -> dict[int, str]:
    """client_id -> status of the mailing's ledger rows."""
    return {m.client_id: m.status for m in await messages_of(engine, mailing_id)}


async def reconciled_revision(engine: AsyncEngine, mailing_id: int) -> int:
    async with engine.connect() as connection:
        value: int = (
            await connection.execute(
                select(Mailing.reconciled_revision).where(Mailing.id == mailing_id)
            )
        ).scalar_one()
    return value


async def set_message(engine: AsyncEngine, message_id: int, **values: object) -> None:
    async with engine.begin() as connection:
        await connection.execute(update(Message).where(Message.id == message_id).values(**values))


async def insert_messages(
    engine: AsyncEngine, mailing_id: int, rows: Sequence[tuple[str, int]]
) -> list[int]:
    """Ledger rows in given (status, attempts), for tests of what happens to them next.

    Client ids are made up (the ledger has no foreign key to clients); the mailing's
    counters are rebuilt to match, as if every row had got there through the scheduler.
    """
    values = [
        {
            "mailing_id": mailing_id,
            "client_id": 1_000_000 + i,
            "phone": next_phone(),
            "timezone": "UTC",
            "status": status,
            "attempts": attempts,
            "due_at": utc_now(),
        }
        for i, (status, attempts) in enumerate(rows)
    ]
    async with engine.begin() as connection:
        ids = list(
            (await connection.execute(insert(Message).returning(Message.id), values)).scalars()
        )
    await rebuild_counters(engine, mailing_id)
    return ids


async def set_attempts(engine: AsyncEngine, mailing_id: int, attempts: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            update(Message).where(Message.mailing_id == mailing_id).values(attempts=attempts)
        )
    await rebuild_counters(engine, mailing_id)


async def rebuild_counters(engine: AsyncEngine, mailing_id: int) -> None:
    """Set the mailing's counters to a recount of its ledger (test setup only)."""
    statuses = ["scheduled", "queued", "retrying", "sent", "failed", "expired", "cancelled"]
    counted = ", ".join(f"count(*) FILTER (WHERE status = '{s}')" for s in statuses)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                f"""
                INSERT INTO mailing_counters (mailing_id, {", ".join(statuses)}, attempts,
                                              first_sent_at, last_sent_at)
                SELECT :mailing_id, {counted}, coalesce(sum(attempts), 0),
                       min(sent_at) FILTER (WHERE status = 'sent'),
                       max(sent_at) FILTER (WHERE status = 'sent')
                FROM messages WHERE mailing_id = :mailing_id
                ON CONFLICT (mailing_id) DO UPDATE SET
                    {", ".join(f"{s} = excluded.{s}" for s in statuses)},
                    attempts = excluded.attempts,
                    first_sent_at = excluded.first_sent_at,
                    last_sent_at = excluded.last_sent_at
                """  # noqa: S608 (column names are constants)
            ),
            {"mailing_id": mailing_id},
        )
