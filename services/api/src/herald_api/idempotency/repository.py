"""SQL for idempotency keys: the advisory lock that serialises a key, and its stored row."""

import hashlib
from datetime import timedelta

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import IdempotencyKey

# Advisory lock keys (namespace, key) are int4 pairs, as the scheduler's are; another
# namespace keeps the two apart. Two keys whose hashes collide only share a lock: the
# later of two such requests in flight together is a 409, and its retry goes through.
_LOCK_NAMESPACE = 0x4849  # "HI": herald idempotency


def lock_key(api_key_id: int, key: str) -> int:
    """The advisory lock's int4 for a key of an API key: stable across processes."""
    digest = hashlib.blake2b(f"{api_key_id}\n{key}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


async def try_lock(session: AsyncSession, api_key_id: int, key: str) -> bool:
    """Take the key's lock until this transaction ends, without waiting; whether it was free."""
    taken = await session.scalar(
        select(func.pg_try_advisory_xact_lock(_LOCK_NAMESPACE, lock_key(api_key_id, key)))
    )
    return bool(taken)


async def find(
    session: AsyncSession, api_key_id: int, key: str, ttl: timedelta
) -> IdempotencyKey | None:
    """The key's row, unless it is older than ``ttl`` (an expired key counts as unused)."""
    statement = select(IdempotencyKey).where(
        IdempotencyKey.api_key_id == api_key_id,
        IdempotencyKey.key == key,
        IdempotencyKey.created_at > func.now() - ttl,
    )
    return await session.scalar(statement)


async def save(
    session: AsyncSession,
    *,
    api_key_id: int,
    key: str,
    fingerprint: str,
    status_code: int,
    body: str,
    headers: dict[str, str],
    ttl: timedelta,
) -> bool:
    """Store the key with its response, over an expired row of the same key; False when a
    live row holds it (which the lock rules out)."""
    values = {
        "fingerprint": fingerprint,
        "status_code": status_code,
        "response_body": body,
        "response_headers": headers,
        "created_at": func.now(),
    }
    statement = (
        insert(IdempotencyKey)
        .values(api_key_id=api_key_id, key=key, **values)
        .on_conflict_do_update(
            index_elements=[IdempotencyKey.api_key_id, IdempotencyKey.key],
            set_=values,
            where=IdempotencyKey.created_at <= func.now() - ttl,
        )
        .returning(IdempotencyKey.key)
    )
    return (await session.scalar(statement)) is not None


async def delete_expired(session: AsyncSession, ttl: timedelta, limit: int) -> int:
    """Delete up to ``limit`` keys older than ``ttl``, the oldest first; how many went.

    Rows another transaction is deleting are skipped rather than waited for.
    """
    doomed = (
        select(IdempotencyKey.api_key_id, IdempotencyKey.key)
        .where(IdempotencyKey.created_at <= func.now() - ttl)
        .order_by(IdempotencyKey.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        delete(IdempotencyKey).where(
            tuple_(IdempotencyKey.api_key_id, IdempotencyKey.key).in_(doomed)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
