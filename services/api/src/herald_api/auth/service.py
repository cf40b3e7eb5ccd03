"""Creating, listing, revoking and checking API keys.

Nothing is cached: every request looks its key up, so a revoked key stops working
at once.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.auth import keys, repository
from herald_api.errors import Unauthorized, ValidationFailed
from herald_api.validation import storable
from herald_common.db.models import ApiKey

_PREFIX_ATTEMPTS = 5
NAME_MAX_LENGTH = 100  # api_keys.name


@dataclass(frozen=True)
class Caller:
    """Who made the request: the API key's id and name (never the key)."""

    key_id: int
    name: str


async def authenticate(session: AsyncSession, key: str) -> Caller:
    prefix = keys.prefix_of(key)
    if prefix is None:
        raise Unauthorized("malformed API key")
    found = await repository.by_prefix(session, prefix)
    if found is None or not keys.matches(key, found.key_hash):
        raise Unauthorized("unknown API key")
    if found.revoked_at is not None:
        raise Unauthorized("revoked API key")
    return Caller(key_id=found.id, name=found.name)


def key_name(name: str) -> str:
    """The name a key is created with: without surrounding blanks, 1 to 100 characters."""
    cleaned = name.strip()
    if not 1 <= len(cleaned) <= NAME_MAX_LENGTH:
        raise ValidationFailed.on("name", f"must be 1 to {NAME_MAX_LENGTH} characters")
    try:
        return storable(cleaned)
    except ValueError as error:
        raise ValidationFailed.on("name", str(error)) from None


async def create(session: AsyncSession, name: str) -> tuple[ApiKey, str]:
    """A new key row and the key itself, which is shown once and never stored."""
    for _ in range(_PREFIX_ATTEMPTS):
        new = keys.generate()
        if not await repository.prefix_taken(session, new.prefix):
            row = await repository.add(session, name=name, prefix=new.prefix, key_hash=new.key_hash)
            return row, new.key
    raise RuntimeError("could not draw an unused key prefix")  # 64**8 prefixes: never


async def list_keys(session: AsyncSession) -> Sequence[ApiKey]:
    return await repository.all_keys(session)


async def get(session: AsyncSession, key_id: int) -> ApiKey | None:
    return await repository.get(session, key_id)


async def revoke(session: AsyncSession, key_id: int) -> ApiKey | None:
    return await repository.revoke(session, key_id)
