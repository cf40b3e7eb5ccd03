"""The message ledger's writes, each set-based and moving mailing_counters in the same statement.

Every status change is one statement shaped alike: a ``moved`` CTE yields one row per
changed message (mailing_id, old_status, new_status, attempts_delta, sent_at), and
:data:`_COUNT_MOVES` adds the per-mailing deltas to ``mailing_counters``. Message rows are
locked in id order and counter rows in mailing_id order, so replicas cannot deadlock on
each other. Callers own the transaction.
"""

# SQL text here is assembled from this package's constants only; values are always bound
# parameters, never formatted in.
# ruff: noqa: S608

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, text
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.contracts import MessageOutcome, SendMessages
from herald_common.domain import FINAL_STATUSES, UNSENT_STATUSES, MessageStatus
from herald_scheduler.commands import ClaimedMessage
from herald_scheduler.transitions import SETTLED_STATUSES, STATUS_RANK

ERROR_MAX_LENGTH = 500
ERROR_CLASS_MAX_LENGTH = 32


def _quoted(statuses: Sequence[MessageStatus] | frozenset[MessageStatus]) -> str:
    return ", ".join(f"'{status.value}'" for status in sorted(statuses))


_UNSENT = _quoted(UNSENT_STATUSES)
_FINAL = _quoted(FINAL_STATUSES)
_COUNTED = [status.value for status in MessageStatus]

# A client matches a mailing when it matches every filter list the mailing has.
MATCHES = (
    "(g.filter_operator_codes IS NULL OR c.operator_code = ANY(g.filter_operator_codes))"
    " AND (g.filter_tags IS NULL OR c.tag = ANY(g.filter_tags))"
)

_DELTAS = ",\n           ".join(
    f"count(*) FILTER (WHERE new_status = '{s}') - count(*) FILTER (WHERE old_status = '{s}')"
    f" AS {s}"
    for s in _COUNTED
)
_ADD_DELTAS = ",\n        ".join(f"{s} = k.{s} + excluded.{s}" for s in _COUNTED)
_COUNTER_COLUMNS = ", ".join(_COUNTED)

# Appended to a statement whose last CTE is `moved`: per-mailing deltas, added to the
# counters in mailing_id order; the statement returns how many rows moved to each status,
# apart by the final status they left if they were final already (a late `sent`).
_COUNT_MOVES = f"""
, deltas AS (
    SELECT mailing_id,
           {_DELTAS},
           coalesce(sum(attempts_delta), 0) AS attempts,
           min(sent_at) AS first_sent_at,
           max(sent_at) AS last_sent_at
    FROM moved
    GROUP BY mailing_id
), counted AS (
    INSERT INTO mailing_counters AS k
        (mailing_id, {_COUNTER_COLUMNS}, attempts, first_sent_at, last_sent_at)
    SELECT mailing_id, {_COUNTER_COLUMNS}, attempts, first_sent_at, last_sent_at
    FROM deltas
    ORDER BY mailing_id
    ON CONFLICT (mailing_id) DO UPDATE SET
        {_ADD_DELTAS},
        attempts = k.attempts + excluded.attempts,
        first_sent_at = least(k.first_sent_at, excluded.first_sent_at),
        last_sent_at = greatest(k.last_sent_at, excluded.last_sent_at)
    RETURNING 1
)
SELECT new_status,
       CASE WHEN old_status IN ({_FINAL}) THEN old_status END AS left_final,
       count(*) AS n
FROM moved
GROUP BY 1, 2
"""


def _rank(column: str) -> str:
    cases = " ".join(f"WHEN '{s.value}' THEN {rank}" for s, rank in STATUS_RANK.items())
    return f"(CASE {column} {cases} END)"


# outcome_applies() in SQL, over the locked row `old` and the outcome `v`.
_FORWARD = f"""(
    (v.status <> 'scheduled' AND old.status NOT IN ({_FINAL}) AND (
        v.attempts > old.attempts
        OR (v.attempts = old.attempts AND {_rank("v.status")} > {_rank("old.status")})
        OR (v.attempts = old.attempts AND v.status = 'retrying' AND old.status = 'retrying')))
    OR (v.status = 'sent' AND old.status NOT IN ({_quoted(SETTLED_STATUSES)}))
    OR (v.status = 'scheduled' AND old.status IN ('queued', 'retrying')
        AND old.dispatch_token = v.token AND v.attempts >= old.attempts)
)"""


@dataclass(frozen=True)
class Moves:
    """How many messages a statement moved, by the status they moved to; and of those,
    how many left a final status (a late ``sent`` over expired or cancelled), by that one."""

    by_status: Counter[MessageStatus] = field(default_factory=Counter)
    left_final: Counter[MessageStatus] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    def count(self, status: MessageStatus) -> int:
        return self.by_status[status]

    def __add__(self, other: "Moves") -> "Moves":
        return Moves(self.by_status + other.by_status, self.left_final + other.left_final)

    @property
    def finals(self) -> dict[MessageStatus, int]:
        """Messages that reached a final status, by the first one they reached: a row that
        was final already is not counted again (it is in ``left_final``)."""
        reached = Counter({s: n for s, n in self.by_status.items() if s in FINAL_STATUSES})
        # The forward rule lets only a `sent` leave a final status.
        reached[MessageStatus.sent] -= sum(self.left_final.values())
        return {status: n for status, n in reached.items() if n > 0}


async def _moves(session: AsyncSession, sql: str, params: dict[str, object]) -> Moves:
    result = await session.execute(text(sql), params)
    by_status: Counter[MessageStatus] = Counter()
    left_final: Counter[MessageStatus] = Counter()
    for row in result:
        by_status[MessageStatus(row.new_status)] += int(row.n)
        if row.left_final is not None:
            left_final[MessageStatus(row.left_final)] += int(row.n)
    return Moves(by_status, left_final)


@dataclass(frozen=True)
class ZoneDue:
    """When a (mailing, time zone) group is due; None with a reason when it never is."""

    mailing_id: int
    timezone: str
    due_at: datetime | None
    reason: str | None = None


def _due_arrays(dues: Sequence[ZoneDue]) -> dict[str, object]:
    return {
        "due_mailing_ids": [d.mailing_id for d in dues],
        "due_zones": [d.timezone for d in dues],
        "due_ats": [d.due_at for d in dues],
        "due_reasons": [d.reason for d in dues],
    }


_DUE_TABLE = """
    unnest(CAST(:due_mailing_ids AS bigint[]), CAST(:due_zones AS text[]),
           CAST(:due_ats AS timestamptz[]), CAST(:due_reasons AS text[]))
        AS d(mailing_id, timezone, due_at, reason)
"""

_INSERT = """
WITH inserted AS (
    INSERT INTO messages
        (mailing_id, client_id, phone, timezone, status, due_at, last_error, finished_at)
    SELECT g.id, c.id, c.phone, c.timezone,
           CASE WHEN d.due_at IS NULL THEN 'expired' ELSE 'scheduled' END,
           coalesce(d.due_at, now()),
           CASE WHEN d.due_at IS NULL THEN d.reason END,
           CASE WHEN d.due_at IS NULL THEN now() END
    FROM {due_table}
    JOIN mailings g ON g.id = d.mailing_id
    JOIN clients c ON c.timezone = d.timezone
    WHERE {scope} AND {matches}
    ORDER BY g.id, c.id
    ON CONFLICT (mailing_id, client_id) DO NOTHING
    RETURNING mailing_id, status
), moved AS (
    SELECT mailing_id, NULL::text AS old_status, status AS new_status,
           0 AS attempts_delta, NULL::timestamptz AS sent_at
    FROM inserted
)
"""

_CLIENT_RANGE = "c.id > :after AND c.id <= :through"
_CLIENT_IDS = "c.id = ANY(CAST(:client_ids AS bigint[]))"


async def insert_for_client_range(
    session: AsyncSession, dues: Sequence[ZoneDue], after: int, through: int
) -> Moves:
    """Materialise the matching clients with after < id <= through for the dues' mailings."""
    sql = _INSERT.format(due_table=_DUE_TABLE, scope=_CLIENT_RANGE, matches=MATCHES)
    return await _moves(
        session, sql + _COUNT_MOVES, {**_due_arrays(dues), "after": after, "through": through}
    )


async def insert_for_clients(
    session: AsyncSession, dues: Sequence[ZoneDue], client_ids: Sequence[int]
) -> Moves:
    """Materialise these clients for the dues' mailings, where they match and have no row."""
    sql = _INSERT.format(due_table=_DUE_TABLE, scope=_CLIENT_IDS, matches=MATCHES)
    return await _moves(
        session, sql + _COUNT_MOVES, {**_due_arrays(dues), "client_ids": list(client_ids)}
    )


# Joins the locked rows back by key; the id array makes the planner use the primary key
# instead of scanning the table to hash it.
_LOCKED_ROWS = "m.id = old.id AND m.id = ANY(ARRAY(SELECT id FROM old))"

_STOP_ROWS = f"""
), moved AS (
    UPDATE messages m
    SET status = old.new_status, last_error = old.reason, next_attempt_at = NULL,
        finished_at = now(), updated_at = now()
    FROM old
    WHERE {_LOCKED_ROWS}
    RETURNING m.mailing_id, old.status AS old_status, m.status AS new_status,
              0 AS attempts_delta, NULL::timestamptz AS sent_at
)
"""

_STOP = """
WITH old AS (
    SELECT m.id, m.status, {reason} AS reason, 'cancelled' AS new_status
    FROM messages m
    JOIN mailings g ON g.id = m.mailing_id
    {client_join}
    WHERE m.status IN ({unsent}) AND {scope}
    ORDER BY m.id
    FOR UPDATE OF m
"""

CLIENT_DELETED = "client deleted"
CLIENT_UNMATCHED = "client no longer matches the mailing's filter"
MAILING_CANCELLED = "mailing cancelled"
MAILING_ENDED = "mailing ended"

_UNMATCHED_REASON = f"""CASE WHEN c.id IS NULL THEN '{CLIENT_DELETED}'
    ELSE '{CLIENT_UNMATCHED.replace("'", "''")}' END"""
_UNMATCHED = f"(c.id IS NULL OR NOT ({MATCHES}))"


def _cancel_sql(*, scope: str, reason: str, by_client: bool = False) -> str:
    client_join = "LEFT JOIN clients c ON c.id = m.client_id" if by_client else ""
    return (
        _STOP.format(client_join=client_join, reason=reason, unsent=_UNSENT, scope=scope)
        + _STOP_ROWS
        + _COUNT_MOVES
    )


# One window of a mailing's rows, keyed on client id (mailings.next_message_window): a
# statement over it locks at most a window of rows, and joins no row outside it. Its
# rows are joined back by key (not by _LOCKED_ROWS: when the planner expects few locked
# rows, that probes the whole id array once per row).
_IN_WINDOW = "m.mailing_id = :mailing_id AND m.client_id > :after AND m.client_id <= :through"

_CANCEL_UNMATCHED_IN_WINDOW = f"""
WITH old AS (
    SELECT m.id, m.status,
           CASE WHEN c.id IS NULL THEN CAST(:client_deleted AS text)
                ELSE CAST(:client_unmatched AS text) END AS reason
    FROM messages m
    JOIN mailings g ON g.id = m.mailing_id
    -- The window's clients only: a range scan rather than the whole table hashed.
    LEFT JOIN clients c ON c.id = m.client_id AND c.id > :after AND c.id <= :through
    WHERE {_IN_WINDOW} AND m.status IN ({_UNSENT}) AND {_UNMATCHED}
    ORDER BY m.id
    FOR UPDATE OF m
), moved AS (
    UPDATE messages m
    SET status = 'cancelled', last_error = old.reason, next_attempt_at = NULL,
        finished_at = now(), updated_at = now()
    FROM old
    WHERE m.id = old.id AND {_IN_WINDOW}
    RETURNING m.mailing_id, old.status AS old_status, m.status AS new_status,
              0 AS attempts_delta, NULL::timestamptz AS sent_at
)
"""

_CANCEL_UNSENT_IN_WINDOW = f"""
WITH old AS (
    SELECT m.id, m.status
    FROM messages m
    WHERE {_IN_WINDOW} AND m.status IN ({_UNSENT})
    ORDER BY m.id
    FOR UPDATE OF m
), moved AS (
    UPDATE messages m
    SET status = 'cancelled', last_error = CAST(:reason AS text), next_attempt_at = NULL,
        finished_at = now(), updated_at = now()
    FROM old
    WHERE m.id = old.id AND {_IN_WINDOW}
    RETURNING m.mailing_id, old.status AS old_status, m.status AS new_status,
              0 AS attempts_delta, NULL::timestamptz AS sent_at
)
"""


def _window(mailing_id: int, after: int, through: int) -> dict[str, object]:
    return {"mailing_id": mailing_id, "after": after, "through": through}


async def cancel_unmatched_in_mailing(
    session: AsyncSession, mailing_id: int, after: int, through: int
) -> Moves:
    """Cancel the window's unsent messages whose client was deleted or no longer matches."""
    params = {
        **_window(mailing_id, after, through),
        "client_deleted": CLIENT_DELETED,
        "client_unmatched": CLIENT_UNMATCHED,
    }
    return await _moves(session, _CANCEL_UNMATCHED_IN_WINDOW + _COUNT_MOVES, params)


async def cancel_unmatched_of_clients(session: AsyncSession, client_ids: Sequence[int]) -> Moves:
    """Cancel these clients' unsent messages, in any mailing, that they no longer match."""
    sql = _cancel_sql(
        scope=f"m.client_id = ANY(CAST(:client_ids AS bigint[])) AND {_UNMATCHED}",
        reason=_UNMATCHED_REASON,
        by_client=True,
    )
    return await _moves(session, sql, {"client_ids": list(client_ids)})


async def cancel_unsent_of_mailing(
    session: AsyncSession, mailing_id: int, after: int, through: int
) -> Moves:
    """Cancel every unsent message in the window of a mailing that was cancelled (or
    deleted, which cancels it too)."""
    params = {**_window(mailing_id, after, through), "reason": MAILING_CANCELLED}
    return await _moves(session, _CANCEL_UNSENT_IN_WINDOW + _COUNT_MOVES, params)


async def stop_finished_mailings(session: AsyncSession, limit: int) -> Moves:
    """Expire the unsent messages of ended mailings and cancel those of cancelled ones.

    Skips rows another transaction holds (a dispatcher queueing them): the next sweep
    takes them. At most ``limit`` rows; call again while it returns that many.
    """
    return await _moves(session, _SWEEP + _STOP_ROWS + _COUNT_MOVES, {"limit": limit})


# Starts from the mailings that are over and, per their counters, still have unsent rows,
# so that a sweep costs nothing while big mailings run. Skipping locked rows never waits,
# so the rows need no lock order.
_SWEEP = f"""
WITH over AS (
    SELECT g.id,
           CASE WHEN g.cancelled_at IS NOT NULL THEN '{MAILING_CANCELLED}'
                ELSE '{MAILING_ENDED}' END AS reason,
           CASE WHEN g.cancelled_at IS NOT NULL THEN 'cancelled' ELSE 'expired' END AS new_status
    FROM mailings g JOIN mailing_counters k ON k.mailing_id = g.id
    WHERE (g.cancelled_at IS NOT NULL OR g.end_at <= now())
      AND k.scheduled + k.queued + k.retrying > 0
), old AS (
    SELECT unsent.id, unsent.status, over.reason, over.new_status
    FROM over CROSS JOIN LATERAL (
        SELECT m.id, m.status
        FROM messages m
        WHERE m.mailing_id = over.id AND m.status IN ({_UNSENT})
        LIMIT :limit
        FOR UPDATE OF m SKIP LOCKED
    ) unsent
    LIMIT :limit
"""


_REFRESH_SNAPSHOTS = f"""
WITH old AS (
    SELECT m.id, c.phone, c.timezone
    FROM messages m JOIN clients c ON c.id = m.client_id
    WHERE m.status IN ({_UNSENT}) AND {{scope}}
      AND (m.phone, m.timezone) IS DISTINCT FROM (c.phone, c.timezone)
    ORDER BY m.id
    FOR UPDATE OF m
)
UPDATE messages m SET phone = old.phone, timezone = old.timezone, updated_at = now()
FROM old
WHERE m.id = old.id AND {{scope}}
"""

_REFRESH_SNAPSHOTS_IN_WINDOW = f"""
WITH old AS (
    SELECT m.id, c.phone, c.timezone
    FROM messages m JOIN clients c ON c.id = m.client_id
    WHERE {_IN_WINDOW} AND c.id > :after AND c.id <= :through
      AND m.status IN ({_UNSENT})
      AND (m.phone, m.timezone) IS DISTINCT FROM (c.phone, c.timezone)
    ORDER BY m.id
    FOR UPDATE OF m
)
UPDATE messages m SET phone = old.phone, timezone = old.timezone, updated_at = now()
FROM old
WHERE m.id = old.id AND {_IN_WINDOW}
"""


async def refresh_snapshots_in_mailing(
    session: AsyncSession, mailing_id: int, after: int, through: int
) -> int:
    """Copy the clients' current phone and time zone into the window's unsent rows."""
    params = _window(mailing_id, after, through)
    result = await session.execute(text(_REFRESH_SNAPSHOTS_IN_WINDOW), params)
    return _rowcount(result)


async def refresh_snapshots_of_clients(session: AsyncSession, client_ids: Sequence[int]) -> int:
    """Copy these clients' current phone and time zone into their unsent rows."""
    sql = _REFRESH_SNAPSHOTS.format(scope="m.client_id = ANY(CAST(:client_ids AS bigint[]))")
    result = await session.execute(text(sql), {"client_ids": list(client_ids)})
    return _rowcount(result)


_RESCHEDULE = f"""
WITH old AS (
    SELECT m.id, d.due_at
    FROM messages m
    JOIN {_DUE_TABLE} ON d.mailing_id = m.mailing_id AND d.timezone = m.timezone
    WHERE m.status = 'scheduled' AND {{scope}}
      AND d.due_at IS NOT NULL AND m.due_at <> d.due_at
      -- A row already due that is still due keeps its place in the dispatch order.
      AND NOT (m.due_at <= CAST(:now AS timestamptz) AND d.due_at <= CAST(:now AS timestamptz))
    ORDER BY m.id
    FOR UPDATE OF m
)
UPDATE messages m SET due_at = old.due_at, updated_at = now()
FROM old
WHERE m.id = old.id AND {{scope}}
"""

# Rows a dispatch holds (queued, retrying) expire too: the mailing's terms apply to them
# at once, and a `sent` still in flight overrides `expired` by the forward rule.
_EXPIRE_UNDELIVERABLE = f"""
WITH old AS (
    SELECT m.id, m.status, d.reason
    FROM messages m
    JOIN {_DUE_TABLE} ON d.mailing_id = m.mailing_id AND d.timezone = m.timezone
    WHERE m.status IN ({_UNSENT}) AND {{scope}} AND d.due_at IS NULL
    ORDER BY m.id
    FOR UPDATE OF m
), moved AS (
    UPDATE messages m
    SET status = 'expired', last_error = old.reason, next_attempt_at = NULL,
        finished_at = now(), updated_at = now()
    FROM old
    WHERE m.id = old.id AND {{scope}}
    RETURNING m.mailing_id, old.status AS old_status, m.status AS new_status,
              0 AS attempts_delta, NULL::timestamptz AS sent_at
)
"""


@dataclass(frozen=True)
class Rescheduled:
    rescheduled: int = 0
    expired: Moves = field(default_factory=Moves)

    def __add__(self, other: "Rescheduled") -> "Rescheduled":
        return Rescheduled(self.rescheduled + other.rescheduled, self.expired + other.expired)


async def _reschedule(
    session: AsyncSession,
    scope: str,
    dues: Sequence[ZoneDue],
    now: datetime,
    params: dict[str, object],
) -> Rescheduled:
    arrays = {**_due_arrays(dues), **params}
    result = await session.execute(text(_RESCHEDULE.format(scope=scope)), {**arrays, "now": now})
    rescheduled = _rowcount(result)
    expired = Moves()
    if any(d.due_at is None for d in dues):
        expired = await _moves(
            session, _EXPIRE_UNDELIVERABLE.format(scope=scope) + _COUNT_MOVES, arrays
        )
    return Rescheduled(rescheduled, expired)


async def reschedule_in_mailing(
    session: AsyncSession,
    mailing_id: int,
    after: int,
    through: int,
    dues: Sequence[ZoneDue],
    now: datetime,
) -> Rescheduled:
    """Move the window's scheduled rows to their zone's due_at; expire zones that have none.

    Queued and retrying rows keep their due time: their senders defer them under the
    mailing's live terms. Only a zone with no due time at all expires them.
    """
    return await _reschedule(session, _IN_WINDOW, dues, now, _window(mailing_id, after, through))


async def reschedule_of_clients(
    session: AsyncSession, client_ids: Sequence[int], dues: Sequence[ZoneDue], now: datetime
) -> Rescheduled:
    """Move these clients' scheduled rows to their (mailing, zone) due_at, or expire their
    unsent rows of zones that have none."""
    return await _reschedule(
        session,
        "m.client_id = ANY(CAST(:client_ids AS bigint[]))",
        dues,
        now,
        {"client_ids": list(client_ids)},
    )


# A paused mailing's rows are not claimed: those its reconcile has not parked at its end
# yet (reconciler.zone_due) and those its senders hand back wait here for a resume.
_CLAIM = """
SELECT m.id, m.mailing_id, m.attempts, g.correlation_id
FROM messages m JOIN mailings g ON g.id = m.mailing_id
WHERE m.status = 'scheduled' AND m.due_at <= now()
  AND g.cancelled_at IS NULL AND g.paused_at IS NULL AND g.end_at > now()
ORDER BY m.due_at
LIMIT :limit
FOR UPDATE OF m SKIP LOCKED
"""


async def claim_due(session: AsyncSession, limit: int) -> list[ClaimedMessage]:
    """Lock up to ``limit`` due rows of running (not paused) mailings that no other
    transaction holds."""
    result = await session.execute(text(_CLAIM), {"limit": limit})
    return [
        ClaimedMessage(
            id=row.id,
            mailing_id=row.mailing_id,
            attempts=row.attempts,
            correlation_id=row.correlation_id,
        )
        for row in result
    ]


# The rows are this transaction's own claim (claim_due locked them), so they need no
# second lock and their old status is known. Joining only the unnest of the ids, whose
# length the planner knows, keeps every plan linear: with a CTE of the locked rows in
# the join too, a freshly materialised table's stale statistics made the planner expect
# 10 of them and probe the whole id list once per row (1.1 s for 2,000 rows, not 40 ms).
_MARK_QUEUED = """
WITH v AS (
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:tokens AS uuid[])) AS v(id, token)
), moved AS (
    UPDATE messages m
    SET status = 'queued', queued_at = now(), updated_at = now(),
        dispatch_token = v.token, lease_until = CAST(:lease_until AS timestamptz)
    FROM v
    WHERE m.id = v.id AND m.status = 'scheduled'
    RETURNING m.mailing_id, CAST('scheduled' AS varchar) AS old_status, m.status AS new_status,
              0 AS attempts_delta, NULL::timestamptz AS sent_at
)
"""


@dataclass(frozen=True)
class Dispatch:
    """Rows committed ``queued`` for their commands, before any command is published."""

    moves: Moves
    lease_until: datetime


def _token_arrays(commands: Sequence[SendMessages]) -> dict[str, object]:
    pairs = [(ref.id, command.token) for command in commands for ref in command.messages]
    return {"ids": [id_ for id_, _ in pairs], "tokens": [token for _, token in pairs]}


async def mark_queued(
    session: AsyncSession, commands: Sequence[SendMessages], lease_seconds: float
) -> Dispatch:
    """Mark the commands' rows, claimed by this transaction, queued under each command's
    token, with a lease."""
    lease_until: datetime = (
        await session.execute(
            text("SELECT now() + make_interval(secs => :seconds)"), {"seconds": lease_seconds}
        )
    ).scalar_one()
    params = {**_token_arrays(commands), "lease_until": lease_until}
    moves = await _moves(session, _MARK_QUEUED + _COUNT_MOVES, params)
    return Dispatch(moves, lease_until)


# Rows of commands whose publish was not confirmed, still exactly as the dispatcher left
# them: no sender took them (taking renews the lease), so none can be sending them.
_RELEASE_UNPUBLISHED = """
WITH v AS (
    SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:tokens AS uuid[])) AS v(id, token)
), old AS (
    SELECT m.id, m.status FROM messages m JOIN v ON v.id = m.id
    WHERE m.id = ANY(CAST(:ids AS bigint[])) AND m.status = 'queued'
      AND m.dispatch_token = v.token AND m.lease_until = CAST(:lease_until AS timestamptz)
    ORDER BY m.id
    FOR UPDATE OF m
), moved AS (
    UPDATE messages m
    SET status = 'scheduled', queued_at = NULL, dispatch_token = NULL, lease_until = NULL,
        updated_at = now()
    FROM old
    WHERE m.id = old.id AND m.id = ANY(CAST(:ids AS bigint[]))
    RETURNING m.mailing_id, old.status AS old_status, m.status AS new_status,
              0 AS attempts_delta, NULL::timestamptz AS sent_at
)
"""


async def release_unpublished(
    session: AsyncSession, commands: Sequence[SendMessages], lease_until: datetime
) -> Moves:
    """Put the rows of unpublished commands back to scheduled, unless a sender took them.

    A command that did reach the broker after all (its confirm was lost) then finds its
    rows without its token, and sends nothing.
    """
    params = {**_token_arrays(commands), "lease_until": lease_until}
    return await _moves(session, _RELEASE_UNPUBLISHED + _COUNT_MOVES, params)


# Queued or retrying rows whose command holds them no longer: it was lost (a purged
# queue, a dead-lettered command) or its sender died. No lock order is needed: SKIP
# LOCKED never waits.
_RELEASE_EXPIRED_LEASES = """
WITH old AS (
    SELECT id, status FROM messages
    WHERE status IN ('queued', 'retrying') AND lease_until < now()
    ORDER BY lease_until
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE messages m
    SET status = 'scheduled', queued_at = NULL, dispatch_token = NULL, lease_until = NULL,
        next_attempt_at = NULL, updated_at = now()
    FROM old
    WHERE m.id = old.id AND m.id = ANY(ARRAY(SELECT id FROM old))
    RETURNING m.mailing_id, old.status AS old_status, m.status AS new_status,
              0 AS attempts_delta, NULL::timestamptz AS sent_at
)
"""


async def release_expired_leases(session: AsyncSession, limit: int) -> Moves:
    """Send rows whose lease ran out back to ``scheduled``, for the dispatcher to send again."""
    return await _moves(session, _RELEASE_EXPIRED_LEASES + _COUNT_MOVES, {"limit": limit})


_APPLY_OUTCOMES = f"""
WITH v AS (
    SELECT *
    FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:attempts AS int[]),
                CAST(:ats AS timestamptz[]), CAST(:error_classes AS text[]),
                CAST(:errors AS text[]), CAST(:next_attempt_ats AS timestamptz[]),
                CAST(:tokens AS uuid[]))
        AS v(message_id, status, attempts, at, error_class, error, next_attempt_at, token)
), old AS (
    SELECT m.id, m.status, m.attempts, m.dispatch_token
    FROM messages m
    WHERE m.id = ANY(CAST(:ids AS bigint[]))
    ORDER BY m.id
    FOR UPDATE
), moved AS (
    UPDATE messages m
    SET status = v.status,
        attempts = greatest(old.attempts, v.attempts),
        last_error = v.error,
        error_class = v.error_class,
        -- `scheduled`: handed back to the dispatcher, due when the client's window opens.
        due_at = CASE WHEN v.status = 'scheduled' THEN v.next_attempt_at ELSE m.due_at END,
        next_attempt_at = CASE WHEN v.status = 'scheduled' THEN NULL ELSE v.next_attempt_at END,
        queued_at = CASE WHEN v.status = 'scheduled' THEN NULL ELSE m.queued_at END,
        dispatch_token = CASE WHEN v.status = 'scheduled' THEN NULL ELSE m.dispatch_token END,
        -- A deferred copy holds the row until it is due, and a dispatch lease beyond.
        lease_until = CASE
            WHEN v.status = 'scheduled' THEN NULL
            WHEN v.status = 'retrying' THEN greatest(
                m.lease_until, v.next_attempt_at + make_interval(secs => :lease_seconds))
            ELSE m.lease_until END,
        sent_at = CASE WHEN v.status = 'sent' THEN v.at ELSE m.sent_at END,
        finished_at = CASE WHEN v.status IN ({_FINAL}) THEN v.at END,
        updated_at = now()
    FROM old JOIN v ON v.message_id = old.id
    WHERE m.id = old.id AND m.id = ANY(CAST(:ids AS bigint[])) AND {_FORWARD}
    RETURNING m.mailing_id, old.status AS old_status, m.status AS new_status,
              m.attempts - old.attempts AS attempts_delta,
              CASE WHEN m.status = 'sent' THEN m.sent_at END AS sent_at
)
"""

# How long a deferred copy may take to come back after it is due, by default.
DEFAULT_LEASE_SECONDS = 300.0


async def apply_outcomes(
    session: AsyncSession,
    outcomes: Sequence[MessageOutcome],
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> Moves:
    """Apply outcomes (at most one per message) that move their rows forward; skip the rest."""
    params: dict[str, object] = {
        "ids": [o.message_id for o in outcomes],
        "statuses": [o.status.value for o in outcomes],
        "attempts": [o.attempts for o in outcomes],
        "ats": [o.at for o in outcomes],
        "error_classes": [_cut(o.error_class, ERROR_CLASS_MAX_LENGTH) for o in outcomes],
        "errors": [_cut(o.error, ERROR_MAX_LENGTH) for o in outcomes],
        "next_attempt_ats": [o.next_attempt_at for o in outcomes],
        "tokens": [o.token for o in outcomes],
        "lease_seconds": lease_seconds,
    }
    return await _moves(session, _APPLY_OUTCOMES + _COUNT_MOVES, params)


def _rowcount(result: object) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def _cut(value: str | None, length: int) -> str | None:
    return value[:length] if value is not None else None


async def next_due_at(session: AsyncSession) -> datetime | None:
    """The earliest due_at of any scheduled row (served by the partial index)."""
    result = await session.execute(
        text("SELECT min(due_at) FROM messages WHERE status = 'scheduled'")
    )
    value: datetime | None = result.scalar_one()
    return value


async def count_queued(session: AsyncSession) -> int:
    """Messages queued now, from the per-mailing counters (cheap at any ledger size)."""
    result = await session.execute(
        text("SELECT coalesce(sum(queued), 0) FROM mailing_counters WHERE queued > 0")
    )
    return int(result.scalar_one())


async def count_due_unqueued(session: AsyncSession) -> int:
    """Due rows waiting for the dispatcher; a paused mailing's are not waiting for it."""
    result = await session.execute(
        text(
            "SELECT count(*) FROM messages m JOIN mailings g ON g.id = m.mailing_id"
            " WHERE m.status = 'scheduled' AND m.due_at <= now() AND g.paused_at IS NULL"
        )
    )
    return int(result.scalar_one())
