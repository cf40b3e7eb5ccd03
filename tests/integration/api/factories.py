"""Small typed factories for the api tests: keys, request bodies, ledger rows."""

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.auth import service as auth_service
from herald_common.db.models import MailingCounters, Message, OutboxEvent
from herald_common.domain import MessageStatus


async def create_api_key(sessionmaker: async_sessionmaker[AsyncSession], name: str) -> str:
    async with sessionmaker() as session, session.begin():
        _, key = await auth_service.create(session, name)
    return key


def client_body(number: int = 1, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"phone": f"7999{number:07d}", "timezone": "Europe/Moscow"}
    body.update(overrides)
    return body


def iso(moment: datetime) -> str:
    return moment.isoformat()


def mailing_body(**overrides: Any) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(days=1)
    body: dict[str, Any] = {
        "text": "Spring sale",
        "start_at": iso(start),
        "end_at": iso(start + timedelta(days=1)),
    }
    body.update(overrides)
    return body


async def outbox_rows(sessionmaker: async_sessionmaker[AsyncSession]) -> list[OutboxEvent]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))).all())


_client_ids = itertools.count(1000)


async def add_messages(
    sessionmaker: async_sessionmaker[AsyncSession],
    mailing_id: int,
    statuses: list[MessageStatus],
    *,
    error_class: str | None = None,
) -> list[int]:
    """Ledger rows as the scheduler would write them, one client id per row."""
    now = datetime.now(UTC)
    rows = [
        {
            "mailing_id": mailing_id,
            "client_id": next(_client_ids),
            "phone": f"7900{index:07d}",
            "timezone": "UTC",
            "status": status.value,
            "due_at": now,
            "error_class": error_class if status is MessageStatus.failed else None,
        }
        for index, status in enumerate(statuses)
    ]
    async with sessionmaker() as session, session.begin():
        ids = await session.scalars(insert(Message).returning(Message.id), rows)
        return list(ids)


async def set_counters(
    sessionmaker: async_sessionmaker[AsyncSession], mailing_id: int, **counts: Any
) -> None:
    async with sessionmaker() as session, session.begin():
        await session.execute(
            update(MailingCounters).where(MailingCounters.mailing_id == mailing_id).values(**counts)
        )
