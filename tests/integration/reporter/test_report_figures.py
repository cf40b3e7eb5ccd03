"""The report of a seeded day equals a recount of the ledger made here, row by row in Python.

The recount assigns each message to the local calendar day of its ``finished_at`` in the
report's zone (``astimezone(zone).date()``), a different route from the report's
``[start, end)`` bounds in SQL; both must agree on every figure.
"""

import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_common.db.models import MailingCounters, Message
from herald_common.domain import MessageStatus
from herald_reporter.figures import StatusCounts
from herald_reporter.report import load_report
from herald_reporter.schedule import report_day
from tests.integration.reporter.factories import Seed, add_messages, create_mailing

BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2025, 6, 11)
BOUNDS = report_day(DAY, BERLIN)
FINAL = [MessageStatus.sent, MessageStatus.failed, MessageStatus.expired, MessageStatus.cancelled]
ERRORS = ["server_error", "timeout", "connection", "end_reached", "client_error"]


def _random_seeds(rng: random.Random, count: int, around: datetime) -> list[Seed]:
    """Messages finishing from a day before to a day after ``around``, some still unsent."""
    seeds = []
    for _ in range(count):
        if rng.random() < 0.1:
            seeds.append(Seed(rng.choice([MessageStatus.scheduled, MessageStatus.retrying])))
            continue
        status = rng.choices(FINAL, weights=[70, 12, 12, 6])[0]
        finished = around + timedelta(seconds=rng.randint(-36 * 3600, 36 * 3600))
        error = rng.choice(ERRORS) if status is not MessageStatus.sent else None
        attempts = 0 if status is MessageStatus.cancelled else rng.randint(1, 5)
        seeds.append(Seed(status, finished, attempts, error))
    return seeds


async def _seed(engine: AsyncEngine) -> dict[str, int]:
    rng = random.Random(14)
    midday = BOUNDS.start + timedelta(hours=12)
    ids = {
        "busy": await create_mailing(
            engine, start_at=BOUNDS.start - timedelta(days=1), end_at=BOUNDS.end + timedelta(days=1)
        ),
        "second": await create_mailing(
            engine,
            start_at=BOUNDS.start + timedelta(hours=8),
            end_at=BOUNDS.end - timedelta(hours=2),
        ),
        "idle": await create_mailing(
            engine,
            start_at=BOUNDS.start + timedelta(hours=1),
            end_at=BOUNDS.start + timedelta(hours=3),
        ),
        "ended_before": await create_mailing(
            engine,
            start_at=BOUNDS.start - timedelta(days=3),
            end_at=BOUNDS.start - timedelta(days=2),
        ),
        "deleted_before": await create_mailing(
            engine,
            start_at=BOUNDS.start - timedelta(days=1),
            end_at=BOUNDS.end + timedelta(days=1),
            cancelled_at=BOUNDS.start - timedelta(hours=1),
        ),
        "later": await create_mailing(
            engine, start_at=BOUNDS.end + timedelta(days=1), end_at=BOUNDS.end + timedelta(days=2)
        ),
    }
    await add_messages(engine, ids["busy"], _random_seeds(rng, 400, midday))
    await add_messages(
        engine,
        ids["second"],
        [
            *_random_seeds(rng, 150, midday),
            # On the boundaries: the day's first instant counts, the next day's does not.
            Seed(MessageStatus.sent, BOUNDS.start, 1),
            Seed(MessageStatus.failed, BOUNDS.end, 3, "timeout"),
            Seed(MessageStatus.sent, BOUNDS.end - timedelta(microseconds=1), 2),
        ],
    )
    # A late answer for a mailing that ended days ago: active through its message.
    await add_messages(engine, ids["ended_before"], [Seed(MessageStatus.sent, midday, 4)])
    await add_messages(
        engine,
        ids["deleted_before"],
        [Seed(MessageStatus.cancelled, BOUNDS.start - timedelta(hours=1), 0)] * 5,
    )
    return ids


def _recount(messages: list[Message], day: date) -> dict[int, StatusCounts]:
    """Per mailing, the messages whose finished_at falls on ``day`` in Berlin."""
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    attempts: Counter[int] = Counter()
    for message in messages:
        if message.finished_at is None or message.finished_at.astimezone(BERLIN).date() != day:
            continue
        counts[message.mailing_id][message.status] += 1
        if message.status != MessageStatus.cancelled:
            attempts[message.mailing_id] += message.attempts
    return {
        mailing_id: StatusCounts(
            sent=c["sent"],
            failed=c["failed"],
            expired=c["expired"],
            cancelled=c["cancelled"],
            attempts=attempts[mailing_id],
        )
        for mailing_id, c in counts.items()
    }


def _sum(counts: list[StatusCounts]) -> StatusCounts:
    return StatusCounts(
        sent=sum(c.sent for c in counts),
        failed=sum(c.failed for c in counts),
        expired=sum(c.expired for c in counts),
        cancelled=sum(c.cancelled for c in counts),
        attempts=sum(c.attempts for c in counts),
    )


async def test_the_report_of_a_seeded_day_equals_a_recount_of_the_ledger(
    report_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ids = await _seed(report_db)
    async with sessionmaker() as session:
        report = await load_report(
            session, DAY, BERLIN, admin_url="https://herald.example.com/admin/"
        )
        messages = list((await session.scalars(select(Message))).all())
        counters = {
            row.mailing_id: row for row in (await session.scalars(select(MailingCounters))).all()
        }
    today = _recount(messages, DAY)
    yesterday = _recount(messages, DAY - timedelta(days=1))

    assert report.totals == _sum(list(today.values()))
    assert report.previous == _sum(list(yesterday.values()))
    # The seed spreads over three days: each side of the comparison has plenty.
    assert report.totals.processed > 100
    assert report.previous.processed > 100
    assert report.change.processed == report.totals.processed - report.previous.processed

    by_id = {mailing.id: mailing for mailing in report.mailings}
    assert set(by_id) == {ids["busy"], ids["second"], ids["idle"], ids["ended_before"]}
    for mailing_id, mailing in by_id.items():
        assert mailing.day == today.get(mailing_id, StatusCounts()), mailing_id
        assert mailing.admin_link == f"https://herald.example.com/admin/mailings/{mailing_id}"
        kept = counters[mailing_id]
        for status in MessageStatus:
            assert mailing.to_date.count(status) == getattr(kept, status.value), (
                mailing_id,
                status,
            )
        assert mailing.to_date.attempts == kept.attempts

        own = [
            m
            for m in messages
            if m.mailing_id == mailing_id
            and m.finished_at is not None
            and m.finished_at.astimezone(BERLIN).date() == DAY
        ]
        sent_at = [m.sent_at for m in own if m.status == MessageStatus.sent and m.sent_at]
        assert mailing.first_sent_at == (min(sent_at) if sent_at else None)
        assert mailing.last_sent_at == (max(sent_at) if sent_at else None)
        errors = Counter(m.error_class for m in own if m.error_class and m.status != "sent")
        expected_top = sorted(errors.items(), key=lambda item: (-item[1], item[0]))[:3]
        assert mailing.top_errors == expected_top

    boundary = by_id[ids["second"]]
    assert boundary.first_sent_at == BOUNDS.start
    assert boundary.last_sent_at == BOUNDS.end - timedelta(microseconds=1)
    assert by_id[ids["idle"]].day == StatusCounts()
    # Those that ended with unsent messages come first.
    flags = [mailing.ended_with_unsent for mailing in report.mailings]
    assert flags == sorted(flags, reverse=True)
    assert report.attention == [m for m in report.mailings if m.day.unsent]


async def test_a_day_without_messages_is_a_report_of_zeros(
    report_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        report = await load_report(session, DAY, BERLIN, now=datetime(2025, 6, 12, tzinfo=UTC))

    assert report.totals == StatusCounts()
    assert report.totals.delivery_rate is None
    assert report.mailings == []
    assert report.change.delivery_rate_points is None
