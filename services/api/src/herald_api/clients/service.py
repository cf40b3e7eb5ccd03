"""Client use cases: each change writes its ``client.*`` event to the outbox and its
entry to the client journal, in the change's transaction."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.clients import repository
from herald_api.clients.schemas import ClientCreate, ClientUpdate, default_operator_code
from herald_api.errors import Conflict, FieldError, NotFound
from herald_api.outbox import writer
from herald_common.contracts import EventType
from herald_common.db.models import Client


def duplicate_phone(phone: str) -> Conflict:
    message = f"a client with phone {phone} already exists"
    return Conflict(message, [FieldError(field="phone", message="already exists")])


def not_found(client_id: int) -> NotFound:
    return NotFound(f"no client with id {client_id}")


async def record_change(
    session: AsyncSession, event_type: writer.ClientEventType, client_ids: Sequence[int]
) -> None:
    """The change's event for the outbox and its journal entries, so that a lost event
    still gets the clients reconciled (see herald_scheduler.client_catch_up)."""
    await repository.journal(session, client_ids)
    await writer.record(session, [writer.clients_changed(event_type, client_ids)])


async def create(session: AsyncSession, new: ClientCreate) -> Client:
    try:
        client = await repository.add(
            session,
            phone=new.phone,
            operator_code=new.resolved_operator_code,
            tag=new.tag,
            timezone=new.timezone,
        )
    except IntegrityError as exc:
        if repository.is_phone_conflict(exc):
            raise duplicate_phone(new.phone) from None
        raise
    await record_change(session, EventType.client_created, [client.id])
    return client


async def get(session: AsyncSession, client_id: int) -> Client:
    client = await repository.get(session, client_id)
    if client is None:
        raise not_found(client_id)
    return client


async def update(session: AsyncSession, client_id: int, changes: ClientUpdate) -> Client:
    values: dict[str, Any] = changes.model_dump(exclude_unset=True)
    if not values:
        return await get(session, client_id)
    if "phone" in values and "operator_code" not in values:
        values["operator_code"] = default_operator_code(values["phone"])
    try:
        client = await repository.change(session, client_id, values)
    except IntegrityError as exc:
        if repository.is_phone_conflict(exc):
            raise duplicate_phone(values["phone"]) from None
        raise
    if client is None:
        raise not_found(client_id)
    await record_change(session, EventType.client_updated, [client.id])
    return client


async def delete(session: AsyncSession, client_id: int) -> None:
    """Hard delete: the ledger keeps its own phone snapshot for statistics."""
    if not await repository.remove(session, client_id):
        raise not_found(client_id)
    await record_change(session, EventType.client_deleted, [client_id])


async def list_page(
    session: AsyncSession,
    *,
    after_id: int,
    limit: int,
    tag: str | None,
    operator_code: str | None,
    phone_prefix: str | None = None,
) -> Sequence[Client]:
    return await repository.page(
        session,
        after_id=after_id,
        limit=limit,
        tag=tag,
        operator_code=operator_code,
        phone_prefix=phone_prefix,
    )


@dataclass(frozen=True)
class FilterValues:
    """The values a mailing's filter can choose from: those clients have."""

    operator_codes: list[str]
    tags: list[str]


async def filter_values(session: AsyncSession, limit: int) -> FilterValues:
    """The distinct operator codes and tags of the directory, each list at most ``limit``
    long, ascending."""
    return FilterValues(
        operator_codes=await repository.operator_codes(session, limit),
        tags=await repository.tags(session, limit),
    )
