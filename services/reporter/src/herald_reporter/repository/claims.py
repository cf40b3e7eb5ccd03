"""Report claims: one row per report date, taken by a single statement under a lease.

The claim is ``INSERT … ON CONFLICT DO UPDATE … WHERE``: PostgreSQL takes the row lock
of an existing date (or of the row a concurrent insert just made) and judges the WHERE
on the latest committed version, so of any number of replicas racing for a date exactly
one gets a row back. A holder records the outcome only while the claim is still its own.
Callers own the transaction and commit the claim before sending.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

ERROR_MAX_LENGTH = 500

_CLAIM = text("""
INSERT INTO report_claims AS c (report_date, state, holder, lease_until)
VALUES (:day, 'sending', :holder, now() + make_interval(secs => :lease_seconds))
ON CONFLICT (report_date) DO UPDATE SET
    state = 'sending',
    holder = excluded.holder,
    lease_until = excluded.lease_until,
    attempts = c.attempts + 1,
    -- A forced resend of a delivered report is a new edition with a Message-ID of its own.
    edition = CASE WHEN c.state = 'sent' THEN c.edition + 1 ELSE c.edition END,
    last_error = NULL,
    claimed_at = now(),
    updated_at = now()
WHERE
    -- The holder died (its lease ran out), or the wait after an unreachable server is over.
    (c.state IN ('sending', 'deferred') AND c.lease_until <= now())
    -- Forced: anything nobody is sending right now.
    OR (CAST(:force AS boolean) AND c.state IN ('deferred', 'sent', 'rejected'))
RETURNING c.edition, c.attempts
""")


@dataclass(frozen=True)
class Claim:
    day: date
    holder: str
    edition: int
    attempt: int


@dataclass(frozen=True)
class ClaimState:
    day: date
    state: str
    holder: str
    lease_until: datetime
    attempts: int
    edition: int
    message_id: str | None
    last_error: str | None
    sent_at: datetime | None


async def claim(
    session: AsyncSession, day: date, holder: str, *, lease_seconds: float, force: bool = False
) -> Claim | None:
    """Take the day's report for ``holder``; None when another holds it or it is settled."""
    row = (
        await session.execute(
            _CLAIM,
            {"day": day, "holder": holder, "lease_seconds": lease_seconds, "force": force},
        )
    ).one_or_none()
    if row is None:
        return None
    return Claim(day=day, holder=holder, edition=int(row.edition), attempt=int(row.attempts))


_MARK_SENT = text("""
UPDATE report_claims
SET state = 'sent', message_id = :message_id, sent_at = now(), lease_until = now(),
    last_error = :note, updated_at = now()
WHERE report_date = :day AND holder = :holder AND state = 'sending'
RETURNING 1
""")

_MARK_REJECTED = text("""
UPDATE report_claims
SET state = 'rejected', message_id = :message_id, last_error = :error, lease_until = now(),
    updated_at = now()
WHERE report_date = :day AND holder = :holder AND state = 'sending'
RETURNING 1
""")

_MARK_DEFERRED = text("""
UPDATE report_claims
SET state = 'deferred', last_error = :error,
    lease_until = now() + make_interval(secs => :retry_seconds), updated_at = now()
WHERE report_date = :day AND holder = :holder AND state = 'sending'
RETURNING lease_until
""")


async def mark_sent(
    session: AsyncSession, claim: Claim, message_id: str, note: str | None = None
) -> bool:
    """Record the SMTP server's acceptance; False if the claim was no longer ours."""
    result = await session.execute(
        _MARK_SENT,
        {
            "day": claim.day,
            "holder": claim.holder,
            "message_id": message_id,
            "note": _cut(note),
        },
    )
    return result.one_or_none() is not None


async def mark_rejected(session: AsyncSession, claim: Claim, message_id: str, error: str) -> bool:
    """Record a permanent (5xx) refusal: the service does not try this day again."""
    result = await session.execute(
        _MARK_REJECTED,
        {"day": claim.day, "holder": claim.holder, "message_id": message_id, "error": _cut(error)},
    )
    return result.one_or_none() is not None


async def mark_deferred(
    session: AsyncSession, claim: Claim, error: str, *, retry_seconds: float
) -> datetime | None:
    """Give the claim back until ``retry_seconds`` from now; when, or None if not ours."""
    row = (
        await session.execute(
            _MARK_DEFERRED,
            {
                "day": claim.day,
                "holder": claim.holder,
                "error": _cut(error),
                "retry_seconds": retry_seconds,
            },
        )
    ).one_or_none()
    return None if row is None else row.lease_until


_STATES = text("""
SELECT report_date, state, holder, lease_until, attempts, edition, message_id, last_error,
       sent_at
FROM report_claims
WHERE report_date = ANY(CAST(:days AS date[]))
ORDER BY report_date
""")


async def states(session: AsyncSession, days: list[date]) -> dict[date, ClaimState]:
    rows = await session.execute(_STATES, {"days": days})
    return {
        row.report_date: ClaimState(
            day=row.report_date,
            state=row.state,
            holder=row.holder,
            lease_until=row.lease_until,
            attempts=row.attempts,
            edition=row.edition,
            message_id=row.message_id,
            last_error=row.last_error,
            sent_at=row.sent_at,
        )
        for row in rows
    }


async def unsent_days_between(session: AsyncSession, first: date, before: date) -> list[date]:
    """Days in ``[first, before)`` with no sent report (what catch-up leaves out)."""
    rows = await session.execute(
        text("""
            SELECT d::date AS day
            FROM generate_series(CAST(:first AS date), CAST(:last AS date), interval '1 day') d
            WHERE NOT EXISTS (
                SELECT 1 FROM report_claims c WHERE c.report_date = d::date AND c.state = 'sent')
            ORDER BY 1
        """),
        {"first": first, "last": before - timedelta(days=1)},
    )
    return [row.day for row in rows]


async def last_sent_at(session: AsyncSession) -> datetime | None:
    """When a report was last accepted by the SMTP server, by any replica."""
    value: datetime | None = (
        await session.execute(text("SELECT max(sent_at) FROM report_claims WHERE state = 'sent'"))
    ).scalar_one()
    return value


_ORIGIN = text("""
WITH recorded AS (
    INSERT INTO report_origin (singleton) VALUES (true)
    ON CONFLICT (singleton) DO NOTHING
    RETURNING first_started_at
)
SELECT first_started_at, true AS first FROM recorded
UNION ALL
SELECT first_started_at, false AS first FROM report_origin
LIMIT 1
""")


@dataclass(frozen=True)
class Origin:
    first_started_at: datetime
    recorded_now: bool


async def record_origin(session: AsyncSession) -> Origin:
    """The reporter's first start, written now if this is it."""
    row = (await session.execute(_ORIGIN)).one()
    return Origin(first_started_at=row.first_started_at, recorded_now=bool(row.first))


def _cut(value: str | None) -> str | None:
    return value[:ERROR_MAX_LENGTH] if value is not None else None
