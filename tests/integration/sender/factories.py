"""Typed factories for the ledger rows the scheduler would have written before a send command."""

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, insert, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from herald_common.contracts import MessageRef, SendMessages
from herald_common.db.models import Client, Mailing, Message


async def create_mailing(
    engine: AsyncEngine,
    *,
    text: str = "Hello from herald",
    end_at: datetime | None = None,
    window: tuple[time, time] | None = None,
    cancelled: bool = False,
    paused: bool = False,
) -> int:
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        mailing_id: int = (
            await connection.execute(
                insert(Mailing)
                .values(
                    text=text,
                    start_at=now - timedelta(minutes=1),
                    end_at=end_at or now + timedelta(hours=1),
                    send_window_start=window[0] if window else None,
                    send_window_end=window[1] if window else None,
                    cancelled_at=now if cancelled else None,
                    paused_at=now if paused else None,
                )
                .returning(Mailing.id)
            )
        ).scalar_one()
    return mailing_id


async def create_messages(
    engine: AsyncEngine,
    mailing_id: int,
    count: int,
    *,
    status: str = "queued",
    timezone: str = "UTC",
    first_client_id: int = 1,
) -> list[int]:
    now = datetime.now(UTC)
    rows = [
        {
            "mailing_id": mailing_id,
            "client_id": client_id,
            "phone": f"79{mailing_id % 100:02d}{client_id:07d}",
            "timezone": timezone,
            "status": status,
            "due_at": now,
            "queued_at": now if status == "queued" else None,
        }
        for client_id in range(first_client_id, first_client_id + count)
    ]
    # Senders judge the mailing's filter by the client's row: every message has one.
    clients = [
        {
            "id": row["client_id"],
            "phone": row["phone"],
            "operator_code": "900",
            "tag": None,
            "timezone": timezone,
        }
        for row in rows
    ]
    async with engine.begin() as connection:
        await connection.execute(postgresql.insert(Client).values(clients).on_conflict_do_nothing())
        result = await connection.execute(insert(Message).values(rows).returning(Message.id))
        return sorted(result.scalars().all())


async def set_message_status(engine: AsyncEngine, message_ids: list[int], status: str) -> None:
    """What the scheduler does when it applies a status event."""
    async with engine.begin() as connection:
        await connection.execute(
            update(Message).where(Message.id.in_(message_ids)).values(status=status)
        )


async def pause_mailing(engine: AsyncEngine, mailing_id: int) -> None:
    """What POST /mailings/{id}/pause does to the row: paused_at set, revision bumped."""
    async with engine.begin() as connection:
        await connection.execute(
            update(Mailing)
            .where(Mailing.id == mailing_id)
            .values(paused_at=func.now(), revision=Mailing.revision + 1)
        )


async def set_mailing_text(engine: AsyncEngine, mailing_id: int, text: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(update(Mailing).where(Mailing.id == mailing_id).values(text=text))


def send_command(mailing_id: int, message_ids: list[int], attempts: int = 0) -> SendMessages:
    """The command the scheduler would publish for these messages."""
    return SendMessages(
        mailing_id=mailing_id,
        messages=[MessageRef(id=message_id, attempts=attempts) for message_id in message_ids],
        correlation_id=f"test-{mailing_id}",
    )
