"""SQL for API keys."""

from collections.abc import Sequence

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import ApiKey


async def by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))


async def get(session: AsyncSession, key_id: int) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.id == key_id))


async def prefix_taken(session: AsyncSession, prefix: str) -> bool:
    found = await session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix))
    return found is not None


async def add(session: AsyncSession, *, name: str, prefix: str, key_hash: str) -> ApiKey:
    statement = insert(ApiKey).values(name=name, prefix=prefix, key_hash=key_hash).returning(ApiKey)
    return (await session.scalars(statement)).one()


async def all_keys(session: AsyncSession) -> Sequence[ApiKey]:
    return (await session.scalars(select(ApiKey).order_by(ApiKey.id))).all()


async def revoke(session: AsyncSession, key_id: int) -> ApiKey | None:
    """Mark the key revoked (keeping the first revocation time); None if there is no such key."""
    statement = (
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(revoked_at=func.coalesce(ApiKey.revoked_at, func.now()))
        .returning(ApiKey)
    )
    return (await session.scalars(statement)).one_or_none()
