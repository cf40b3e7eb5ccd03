"""Reads the scheduler makes of mailings and clients, and its reconciled-revision mark."""

# SQL text here is assembled from this package's constants only; values are always bound
# parameters, never formatted in.
# ruff: noqa: S608

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from herald_common.domain import UNSENT_STATUSES
from herald_common.send_window import SendWindow
from herald_scheduler.repository.ledger import MATCHES

# Inlined rather than bound: the planner can then match the partial index on unsent rows.
_UNSENT = ", ".join(f"'{status.value}'" for status in sorted(UNSENT_STATUSES))


@dataclass(frozen=True)
class MailingFrame:
    """What decides a mailing's due times: its frame, its client-local send window, and
    whether an operator has paused it."""

    id: int
    start_at: datetime
    end_at: datetime
    send_window: SendWindow | None
    paused: bool = False


@dataclass(frozen=True)
class MailingState:
    frame: MailingFrame
    revision: int
    reconciled_revision: int
    cancelled_at: datetime | None
    correlation_id: str | None


@dataclass(frozen=True)
class ClientChunk:
    """A keyset chunk of a mailing's matching clients: ids in (after, through]."""

    through: int
    size: int
    timezones: list[str]
    now: datetime


@dataclass(frozen=True)
class ZoneGroup:
    """Clients of one time zone that a mailing concerns."""

    mailing: MailingFrame
    timezone: str


# Advisory lock keys (namespace, key): int4 pairs; ids beyond int4 wrap, which only ever
# makes two mailings share a lock.
_LOCK_NAMESPACE = 0x4852  # "HR": herald reconcile
_INT4 = 2**31 - 1


def _lock_key(mailing_id: int) -> int:
    return mailing_id % _INT4


@asynccontextmanager
async def reconciling(engine: AsyncEngine, mailing_id: int) -> AsyncIterator[None]:
    """Hold the mailing's reconcile lock: one reconcile of a mailing at a time, in any replica.

    A reconcile spans many short transactions, so this is a session-level advisory lock
    on a connection of its own; PostgreSQL frees it if that connection dies.
    """
    params = {"namespace": _LOCK_NAMESPACE, "key": _lock_key(mailing_id)}
    async with engine.connect() as connection:
        await connection.execute(text("SELECT pg_advisory_lock(:namespace, :key)"), params)
        await connection.commit()
        try:
            yield
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:namespace, :key)"), params)
            await connection.commit()


async def share_reconcile_locks(session: AsyncSession, mailing_ids: Sequence[int]) -> None:
    """Wait until no mailing reconcile of these mailings runs, and keep them out until commit.

    Client reconciles take these shared (they do not block each other); in key order, so
    that they cannot deadlock with one another. Each key takes a slot of PostgreSQL's lock
    table until commit, which holds some thousands in all: pass a bounded batch.
    """
    keys = sorted({_lock_key(mailing_id) for mailing_id in mailing_ids})
    if keys:
        await session.execute(
            text(
                "SELECT pg_advisory_xact_lock_shared(:namespace, k.key)"
                " FROM unnest(CAST(:keys AS int[])) WITH ORDINALITY AS k(key, n) ORDER BY k.n"
            ),
            {"namespace": _LOCK_NAMESPACE, "keys": keys},
        )


_FRAME_COLUMNS = (
    "g.id, g.start_at, g.end_at, g.send_window_start, g.send_window_end, g.paused_at IS NOT NULL"
    " AS paused"
)


def _frame(row: Any) -> MailingFrame:
    window = None
    if row.send_window_start is not None and row.send_window_end is not None:
        window = SendWindow(row.send_window_start, row.send_window_end)
    return MailingFrame(row.id, row.start_at, row.end_at, window, bool(row.paused))


async def database_now(session: AsyncSession) -> datetime:
    """The transaction's now(): due times are compared with it in SQL, so compute from it too."""
    value: datetime = (await session.execute(text("SELECT now()"))).scalar_one()
    return value


async def get_mailing(session: AsyncSession, mailing_id: int) -> MailingState | None:
    result = await session.execute(
        text(
            f"SELECT {_FRAME_COLUMNS}, g.revision, g.reconciled_revision, g.cancelled_at,"
            " g.correlation_id"
            " FROM mailings g WHERE g.id = :mailing_id"
        ),
        {"mailing_id": mailing_id},
    )
    row = result.one_or_none()
    if row is None:
        return None
    return MailingState(
        _frame(row), row.revision, row.reconciled_revision, row.cancelled_at, row.correlation_id
    )


async def next_client_chunk(
    session: AsyncSession, mailing_id: int, after: int, size: int
) -> ClientChunk | None:
    """The next ``size`` matching clients after id ``after``: their last id and time zones."""
    result = await session.execute(
        text(
            f"""
            SELECT max(c.id) AS through, count(*) AS size,
                   array_agg(DISTINCT c.timezone) AS timezones, now() AS now
            FROM (
                SELECT c.id, c.timezone
                FROM clients c JOIN mailings g ON g.id = :mailing_id
                WHERE c.id > :after AND {MATCHES}
                ORDER BY c.id
                LIMIT :size
            ) c
            """
        ),
        {"mailing_id": mailing_id, "after": after, "size": size},
    )
    row = result.one()
    if row.through is None:
        return None
    return ClientChunk(int(row.through), int(row.size), list(row.timezones), row.now)


@dataclass(frozen=True)
class MessageWindow:
    """A keyset window of a mailing's ledger rows: those of client ids in (after, through]."""

    after: int
    through: int
    size: int


async def next_message_window(
    session: AsyncSession, mailing_id: int, after: int, size: int
) -> MessageWindow | None:
    """The mailing's next ``size`` rows (of any status) after client id ``after``.

    Keyed on client id, so that a window bounds the clients its statements join as well
    as the messages (served by the (mailing_id, client_id) unique index).
    """
    result = await session.execute(
        text(
            """
            SELECT max(w.client_id) AS through, count(*) AS size
            FROM (
                SELECT m.client_id FROM messages m
                WHERE m.mailing_id = :mailing_id AND m.client_id > :after
                ORDER BY m.client_id
                LIMIT :size
            ) w
            """
        ),
        {"mailing_id": mailing_id, "after": after, "size": size},
    )
    row = result.one()
    if row.through is None:
        return None
    return MessageWindow(after, int(row.through), int(row.size))


async def unsent_zones_in_window(
    session: AsyncSession, mailing_id: int, window: MessageWindow
) -> list[str]:
    """The time zones of the window's unsent rows, of every unsent status: a zone whose
    send window never opens again expires the rows a dispatch holds, too."""
    result = await session.execute(
        text(
            "SELECT DISTINCT m.timezone FROM messages m"
            " WHERE m.mailing_id = :mailing_id AND m.client_id > :after"
            f" AND m.client_id <= :through AND m.status IN ({_UNSENT})"
        ),
        {"mailing_id": mailing_id, "after": window.after, "through": window.through},
    )
    return list(result.scalars())


async def matching_mailing_ids(session: AsyncSession, client_ids: Sequence[int]) -> list[int]:
    """Running or upcoming mailings that any of these clients match, by id."""
    result = await session.execute(
        text(
            f"""
            SELECT DISTINCT g.id
            FROM clients c JOIN mailings g ON {MATCHES}
            WHERE c.id = ANY(CAST(:client_ids AS bigint[]))
              AND g.cancelled_at IS NULL AND g.end_at > now()
            ORDER BY g.id
            """
        ),
        {"client_ids": list(client_ids)},
    )
    return list(result.scalars())


async def matching_zone_groups(
    session: AsyncSession, client_ids: Sequence[int], mailing_ids: Sequence[int]
) -> list[ZoneGroup]:
    """(mailing, zone) pairs of these running or upcoming mailings that these clients match."""
    result = await session.execute(
        text(
            f"""
            SELECT DISTINCT {_FRAME_COLUMNS}, c.timezone
            FROM clients c JOIN mailings g ON {MATCHES}
            WHERE c.id = ANY(CAST(:client_ids AS bigint[]))
              AND g.id = ANY(CAST(:mailing_ids AS bigint[]))
              AND g.cancelled_at IS NULL AND g.end_at > now()
            """
        ),
        {"client_ids": list(client_ids), "mailing_ids": list(mailing_ids)},
    )
    return [ZoneGroup(_frame(row), row.timezone) for row in result]


async def unsent_mailing_ids(session: AsyncSession, client_ids: Sequence[int]) -> list[int]:
    """Mailings in which these clients have unsent rows, by id."""
    result = await session.execute(
        text(
            "SELECT DISTINCT m.mailing_id FROM messages m"
            " WHERE m.client_id = ANY(CAST(:client_ids AS bigint[]))"
            f" AND m.status IN ({_UNSENT})"
            " ORDER BY m.mailing_id"
        ),
        {"client_ids": list(client_ids)},
    )
    return list(result.scalars())


async def unsent_zone_groups(
    session: AsyncSession, client_ids: Sequence[int], mailing_ids: Sequence[int]
) -> list[ZoneGroup]:
    """(mailing, zone) pairs of these clients' unsent rows in these mailings."""
    result = await session.execute(
        text(
            f"""
            SELECT DISTINCT {_FRAME_COLUMNS}, m.timezone
            FROM messages m JOIN mailings g ON g.id = m.mailing_id
            WHERE m.client_id = ANY(CAST(:client_ids AS bigint[]))
              AND m.mailing_id = ANY(CAST(:mailing_ids AS bigint[]))
              AND m.status IN ({_UNSENT})
            """
        ),
        {"client_ids": list(client_ids), "mailing_ids": list(mailing_ids)},
    )
    return [ZoneGroup(_frame(row), row.timezone) for row in result]


async def unreconciled_mailing_ids(session: AsyncSession, limit: int) -> list[int]:
    """Mailings changed since the scheduler last fully reconciled them (partial index)."""
    result = await session.execute(
        text(
            "SELECT id FROM mailings WHERE reconciled_revision < revision ORDER BY id LIMIT :limit"
        ),
        {"limit": limit},
    )
    return list(result.scalars())


async def mark_reconciled(session: AsyncSession, mailing_id: int, revision: int) -> None:
    """Record that the mailing's ledger reflects ``revision`` (never moves the mark back)."""
    await session.execute(
        text(
            "UPDATE mailings SET reconciled_revision = :revision"
            " WHERE id = :mailing_id AND reconciled_revision < :revision"
        ),
        {"mailing_id": mailing_id, "revision": revision},
    )
