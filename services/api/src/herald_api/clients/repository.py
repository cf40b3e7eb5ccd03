"""SQL for clients, including the bulk import's COPY into a staging table and merge, and
the client journal every change writes for the scheduler."""

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import Client

PHONE_UNIQUE_CONSTRAINT = "uq_clients_phone"

StagedRow = tuple[int, str, str, str | None, str]  # line, phone, operator_code, tag, timezone


def is_phone_conflict(exc: IntegrityError) -> bool:
    diagnostics = getattr(exc.orig, "diag", None)
    return getattr(diagnostics, "constraint_name", None) == PHONE_UNIQUE_CONSTRAINT


async def add(
    session: AsyncSession, *, phone: str, operator_code: str, tag: str | None, timezone: str
) -> Client:
    statement = (
        insert(Client)
        .values(phone=phone, operator_code=operator_code, tag=tag, timezone=timezone)
        .returning(Client)
    )
    return (await session.scalars(statement)).one()


async def get(session: AsyncSession, client_id: int) -> Client | None:
    return await session.scalar(select(Client).where(Client.id == client_id))


async def change(session: AsyncSession, client_id: int, values: dict[str, Any]) -> Client | None:
    statement = (
        update(Client)
        .where(Client.id == client_id)
        .values(**values, updated_at=func.now())
        .returning(Client)
    )
    return (await session.scalars(statement)).one_or_none()


async def remove(session: AsyncSession, client_id: int) -> bool:
    statement = delete(Client).where(Client.id == client_id).returning(Client.id)
    return (await session.scalar(statement)) is not None


async def page(
    session: AsyncSession,
    *,
    after_id: int,
    limit: int,
    tag: str | None,
    operator_code: str | None,
    phone_prefix: str | None = None,
) -> Sequence[Client]:
    statement = select(Client).where(Client.id > after_id).order_by(Client.id).limit(limit)
    if tag is not None:
        statement = statement.where(Client.tag == tag)
    if operator_code is not None:
        statement = statement.where(Client.operator_code == operator_code)
    if phone_prefix:
        statement = statement.where(Client.phone.startswith(phone_prefix, autoescape=True))
    return (await session.scalars(statement)).all()


# The distinct values of an indexed column by a "loose index scan": each step jumps to the
# next larger value through the index, so the cost grows with the number of values, not of
# clients (PostgreSQL does not skip through an index by itself).
_OPERATOR_CODES = text(
    "WITH RECURSIVE found (value) AS ("
    " (SELECT operator_code FROM clients ORDER BY operator_code LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT c.operator_code FROM clients c WHERE c.operator_code > found.value"
    " ORDER BY c.operator_code LIMIT 1)"
    " FROM found WHERE found.value IS NOT NULL"
    ") SELECT value FROM found WHERE value IS NOT NULL LIMIT :limit"
)
_TAGS = text(
    "WITH RECURSIVE found (value) AS ("
    " (SELECT tag FROM clients WHERE tag IS NOT NULL ORDER BY tag LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT c.tag FROM clients c WHERE c.tag > found.value ORDER BY c.tag LIMIT 1)"
    " FROM found WHERE found.value IS NOT NULL"
    ") SELECT value FROM found WHERE value IS NOT NULL LIMIT :limit"
)


async def operator_codes(session: AsyncSession, limit: int) -> list[str]:
    """The operator codes clients have, ascending, at most ``limit``."""
    return [str(value) for value in await session.scalars(_OPERATOR_CODES, {"limit": limit})]


async def tags(session: AsyncSession, limit: int) -> list[str]:
    """The tags clients have, ascending, at most ``limit``."""
    return [str(value) for value in await session.scalars(_TAGS, {"limit": limit})]


# Every change draws a new revision but keeps pending_since: an entry that keeps changing
# still reaches the scheduler's catch-up pass. In client id order, so that two writers
# (an import, the scheduler removing entries) lock the rows in the same order.
_JOURNAL = text(
    "INSERT INTO client_changes (client_id)"
    " SELECT DISTINCT client_id FROM unnest(CAST(:client_ids AS bigint[])) AS client_id"
    " ORDER BY client_id"
    " ON CONFLICT (client_id) DO UPDATE SET revision = EXCLUDED.revision"
)


async def journal(session: AsyncSession, client_ids: Sequence[int]) -> None:
    """Note in the client journal that these clients changed (or were deleted).

    In the change's own transaction: the scheduler reconciles what an entry names even
    if the change's event never reaches it.
    """
    if client_ids:
        await session.execute(_JOURNAL, {"client_ids": list(client_ids)})


# The staging table lives as long as the connection; ON COMMIT DELETE ROWS empties it
# after every chunk's transaction, so a pooled connection reuses it clean.
_CREATE_STAGING = text(
    "CREATE TEMP TABLE IF NOT EXISTS client_import_staging ("
    " line integer NOT NULL, phone text NOT NULL, operator_code text NOT NULL,"
    " tag text, timezone text NOT NULL"
    ") ON COMMIT DELETE ROWS"
)
_COPY_STAGING = "COPY client_import_staging (line, phone, operator_code, tag, timezone) FROM STDIN"
_MERGE = """
INSERT INTO clients (phone, operator_code, tag, timezone)
SELECT phone, operator_code, tag, timezone FROM client_import_staging ORDER BY line
ON CONFLICT (phone) DO {action}
RETURNING id, phone, (xmax = 0) AS inserted
"""
_INSERT_NEW = text(_MERGE.format(action="NOTHING"))
_UPSERT = text(
    _MERGE.format(
        action="UPDATE SET operator_code = EXCLUDED.operator_code, tag = EXCLUDED.tag,"
        " timezone = EXCLUDED.timezone, updated_at = now()"
    )
)


async def stage(session: AsyncSession, rows: Iterable[StagedRow]) -> None:
    """COPY rows (phones unique among them) into this transaction's staging table."""
    await session.execute(_CREATE_STAGING)
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    async with driver.cursor() as cursor, cursor.copy(_COPY_STAGING) as copy:
        for row in rows:
            await copy.write_row(row)


async def merge_staged(session: AsyncSession, *, upsert: bool) -> list[tuple[int, str, bool]]:
    """Insert the staged rows into clients; (id, phone, inserted) for each row written.

    Without upsert, a staged phone that already exists is skipped and not returned.
    """
    result = await session.execute(_UPSERT if upsert else _INSERT_NEW)
    return [(row.id, row.phone, row.inserted) for row in result]
