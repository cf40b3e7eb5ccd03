"""The sender's SQL: a command's messages as the ledger knows them now, and which of the
mailings in hand were deleted since."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy import BigInteger, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

_LOAD_MESSAGES = text(
    """
    SELECT m.id, m.status, m.phone, m.timezone, m.attempts,
           g.text, g.end_at, g.send_window_start, g.send_window_end, g.cancelled_at,
           m.client_id
    FROM messages m
    JOIN mailings g ON g.id = m.mailing_id
    WHERE m.id = ANY(:ids)
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))


_CANCELLED_MAILINGS = text(
    "SELECT id FROM mailings WHERE id = ANY(:ids) AND cancelled_at IS NOT NULL"
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)))


@dataclass(frozen=True, slots=True)
class MessageState:
    """A message and what of its mailing the sender needs, read when its command arrives."""

    id: int
    status: str
    phone: str
    timezone: str
    attempts: int
    text: str
    end_at: datetime
    send_window_start: time | None
    send_window_end: time | None
    cancelled_at: datetime | None
    # For the logs: every attempt names its client. Last, with a default, so that
    # states built by hand (the unit tests' fakes) need not name one.
    client_id: int | None = None


async def load_messages(connection: AsyncConnection, ids: Sequence[int]) -> list[MessageState]:
    """The current state of these messages; ids unknown to the ledger are simply absent."""
    result = await connection.execute(_LOAD_MESSAGES, {"ids": list(ids)})
    return [MessageState(*row) for row in result]


async def cancelled_mailings(connection: AsyncConnection, ids: Sequence[int]) -> list[int]:
    """Those of these mailings that were deleted."""
    result = await connection.execute(_CANCELLED_MAILINGS, {"ids": list(ids)})
    return [row[0] for row in result]
