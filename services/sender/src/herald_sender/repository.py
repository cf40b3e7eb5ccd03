"""The sender's SQL: take a command's messages from the ledger, keep holding them, and read
the current terms of the mailings in hand."""

# SQL text here is assembled from this module's constants only; values are always bound.
# ruff: noqa: S608

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import BigInteger, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

_TERMS_COLUMNS = """g.id, g.revision, g.text, g.start_at, g.end_at, g.send_window_start,
       g.send_window_end, g.cancelled_at, g.paused_at, g.filter_operator_codes, g.filter_tags,
       g.max_rate"""

# Takes the rows that still carry the command's token, renewing their lease: a copy of
# a command whose rows were dispatched again (or settled) takes nothing. The client's
# operator code and tag are read to judge the mailing's filter as it changes.
_TAKE_MESSAGES = text(
    f"""
    WITH taken AS (
        UPDATE messages m SET lease_until = now() + make_interval(secs => :hold)
        WHERE m.id = ANY(:ids) AND m.status IN ('queued', 'retrying')
          AND m.dispatch_token IS NOT DISTINCT FROM :token
        RETURNING m.id, m.status, m.phone, m.timezone, m.attempts, m.client_id, m.mailing_id
    )
    SELECT t.id, t.status, t.phone, t.timezone, t.attempts, t.client_id,
           c.operator_code, c.tag, {_TERMS_COLUMNS}
    FROM taken t
    JOIN mailings g ON g.id = t.mailing_id
    LEFT JOIN clients c ON c.id = t.client_id
    """
).bindparams(bindparam("ids", type_=ARRAY(BigInteger)), bindparam("token", type_=UUID))

_RENEW_LEASES = text(
    """
    UPDATE messages m SET lease_until = now() + make_interval(secs => :hold)
    FROM unnest(CAST(:ids AS bigint[]), CAST(:tokens AS uuid[])) AS v(id, token)
    WHERE m.id = v.id AND m.id = ANY(CAST(:ids AS bigint[]))
      AND m.status IN ('queued', 'retrying') AND m.dispatch_token IS NOT DISTINCT FROM v.token
    """
)

_MAILING_TERMS = text(f"SELECT {_TERMS_COLUMNS} FROM mailings g WHERE g.id = ANY(:ids)").bindparams(
    bindparam("ids", type_=ARRAY(BigInteger))
)


@dataclass(frozen=True, slots=True)
class MailingTerms:
    """What of a mailing decides whether and what to send; bumped ``revision`` on change."""

    id: int
    revision: int
    text: str
    start_at: datetime
    end_at: datetime
    send_window_start: time | None
    send_window_end: time | None
    cancelled_at: datetime | None
    # Set while an operator has paused the mailing: no request starts, held messages go
    # back to the ledger as scheduled.
    paused_at: datetime | None
    filter_operator_codes: list[str] | None
    filter_tags: list[str] | None
    # At most this many of the mailing's requests a second, across all senders.
    max_rate: float | None

    def matches(self, operator_code: str | None, tag: str | None) -> bool:
        """Whether a client with these attributes is in the mailing's filter; a deleted
        client (None) is in none."""
        if operator_code is None:
            return False
        codes, tags = self.filter_operator_codes, self.filter_tags
        return (codes is None or operator_code in codes) and (tags is None or tag in tags)


@dataclass(frozen=True, slots=True)
class MessageState:
    """A message as the ledger knows it when its command is taken, with its mailing's terms."""

    id: int
    status: str
    phone: str
    timezone: str
    attempts: int
    client_id: int | None
    operator_code: str | None
    tag: str | None
    terms: MailingTerms


async def take_messages(
    connection: AsyncConnection, ids: Sequence[int], token: uuid.UUID | None, hold: float
) -> list[MessageState]:
    """Take these messages for a command with this token, leased for ``hold`` seconds.

    Messages the token no longer holds (dispatched again, settled, unknown) are absent.
    """
    result = await connection.execute(
        _TAKE_MESSAGES, {"ids": list(ids), "token": token, "hold": hold}
    )
    rows = result.all()
    await connection.commit()
    return [
        # By position: the message's and the mailing's ids are both named `id`.
        MessageState(
            id=row[0],
            status=row[1],
            phone=row[2],
            timezone=row[3],
            attempts=row[4],
            client_id=row[5],
            operator_code=row[6],
            tag=row[7],
            terms=MailingTerms(*row[8:]),
        )
        for row in rows
    ]


async def renew_leases(
    connection: AsyncConnection, held: Sequence[tuple[int, uuid.UUID | None]], hold: float
) -> int:
    """Extend the leases of messages this sender holds; how many it still holds."""
    result = await connection.execute(
        _RENEW_LEASES,
        {"ids": [id_ for id_, _ in held], "tokens": [token for _, token in held], "hold": hold},
    )
    await connection.commit()
    return int(result.rowcount)


async def mailing_terms(connection: AsyncConnection, ids: Sequence[int]) -> list[MailingTerms]:
    """The current terms of these mailings; ids of mailings that are gone are absent."""
    result = await connection.execute(_MAILING_TERMS, {"ids": list(ids)})
    return [MailingTerms(*row) for row in result]


# The shared rate limit (herald_sender.rate_limit). The rate in force comes back to the
# limit, 1 % of it per lease, once no 429 has lowered it for RECOVERY seconds.
_RATE_IN_FORCE = """CASE
    WHEN r.throttled_at > clock_timestamp() - make_interval(secs => :recovery)
        THEN least(r.rate, :limit)
    ELSE least(:limit, r.rate + :limit * 0.01) END"""

_ENSURE_RATE_LIMIT = text(
    "INSERT INTO rate_limits (name, tat, rate) VALUES (:name, clock_timestamp(), :limit)"
    " ON CONFLICT (name) DO NOTHING"
)

# GCRA by the database's clock: the next ``n`` slots, one 1/rate apart, start at the
# theoretical arrival time, or now when that is past (no burst is saved up).
_LEASE_RATE_SLOTS = text(
    f"""
    UPDATE rate_limits r
    SET rate = {_RATE_IN_FORCE},
        tat = greatest(r.tat, clock_timestamp()) + make_interval(secs => :n / {_RATE_IN_FORCE})
    WHERE r.name = :name
    RETURNING r.tat, r.rate
    """
)

# A mailing's own max_rate: the row is made by its first lease, and its rate is always
# the mailing's current max_rate (the API's 429s lower the global limit, not this one).
_LEASE_MAILING_RATE_SLOTS = text(
    """
    INSERT INTO rate_limits AS r (name, tat, rate)
    VALUES (:name, clock_timestamp() + make_interval(secs => :n / :limit), :limit)
    ON CONFLICT (name) DO UPDATE
    SET rate = :limit,
        tat = greatest(r.tat, clock_timestamp()) + make_interval(secs => :n / :limit)
    RETURNING r.tat, r.rate
    """
)

# A 429: lower the rate in force (at most once a second, however many senders see it),
# and push the next slot back by the answer's Retry-After.
_THROTTLE = text(
    """
    UPDATE rate_limits r
    SET rate = CASE WHEN r.throttled_at > clock_timestamp() - interval '1 second' THEN r.rate
                    ELSE greatest(:floor, r.rate * :decrease) END,
        throttled_at = clock_timestamp(),
        tat = greatest(r.tat, clock_timestamp() + make_interval(secs => :pause))
    WHERE r.name = :name
    RETURNING r.rate
    """
)


@dataclass(frozen=True, slots=True)
class RateSlots:
    """``n`` slots one ``interval`` (seconds) apart, the first at ``first`` (database time)."""

    first: datetime
    interval: float
    n: int


async def ensure_rate_limit(connection: AsyncConnection, name: str, limit: float) -> None:
    await connection.execute(_ENSURE_RATE_LIMIT, {"name": name, "limit": limit})
    await connection.commit()


async def lease_rate_slots(
    connection: AsyncConnection, name: str, limit: float, n: int, recovery: float
) -> RateSlots:
    result = await connection.execute(
        _LEASE_RATE_SLOTS, {"name": name, "limit": limit, "n": n, "recovery": recovery}
    )
    tat, rate = result.one()
    return await _leased(connection, tat, rate, n)


async def lease_mailing_rate_slots(
    connection: AsyncConnection, name: str, limit: float, n: int
) -> RateSlots:
    result = await connection.execute(
        _LEASE_MAILING_RATE_SLOTS, {"name": name, "limit": limit, "n": n}
    )
    tat, rate = result.one()
    return await _leased(connection, tat, rate, n)


async def _leased(connection: AsyncConnection, tat: datetime, rate: float, n: int) -> RateSlots:
    await connection.commit()
    interval = 1.0 / rate
    return RateSlots(first=tat - timedelta(seconds=n * interval), interval=interval, n=n)


async def throttle(
    connection: AsyncConnection, name: str, *, floor: float, decrease: float, pause: float
) -> float:
    """Lower the shared rate after a 429; the rate now in force."""
    result = await connection.execute(
        _THROTTLE, {"name": name, "floor": floor, "decrease": decrease, "pause": pause}
    )
    rate = float(result.scalar_one())
    await connection.commit()
    return rate
