"""Rows the admin page tests start from, made through the same services the pages call."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.clients import service as clients
from herald_api.clients.schemas import ClientCreate
from herald_api.mailings import service as mailings
from herald_api.mailings.schemas import MailingCreate
from herald_common.db.models import Client, Mailing, OutboxEvent


async def add_client(
    sessionmaker: async_sessionmaker[AsyncSession], number: int, **fields: Any
) -> Client:
    body: dict[str, Any] = {"phone": f"7999{number:07d}", "timezone": "Europe/Moscow"} | fields
    async with sessionmaker() as session, session.begin():
        return await clients.create(session, ClientCreate.model_validate(body))


async def add_mailing(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    start_at: datetime | None = None,
    end_at: datetime | None = None,
    **fields: Any,
) -> Mailing:
    start = start_at or datetime.now(UTC) + timedelta(days=1)
    body: dict[str, Any] = {
        "text": "Spring sale",
        "start_at": start,
        "end_at": end_at or start + timedelta(days=1),
    } | fields
    async with sessionmaker() as session, session.begin():
        mailing, _ = await mailings.create(session, MailingCreate.model_validate(body))
        return mailing


async def count(sessionmaker: async_sessionmaker[AsyncSession], model: type[Any]) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def event_types(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessionmaker() as session:
        statement = select(OutboxEvent.event_type).order_by(OutboxEvent.id)
        return list(await session.scalars(statement))
