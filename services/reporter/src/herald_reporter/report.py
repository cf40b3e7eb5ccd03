"""Building a day's :class:`~herald_reporter.figures.Report` from the ledger, in one snapshot."""

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.domain import MessageStatus
from herald_reporter.figures import (
    LedgerCounts,
    MailingFigures,
    Report,
    StatusCounts,
    admin_link,
    ordered,
    top_errors,
)
from herald_reporter.repository import ledger
from herald_reporter.schedule import report_day


async def load_report(
    session: AsyncSession,
    day: date,
    zone: ZoneInfo,
    *,
    admin_url: str | None = None,
    now: datetime | None = None,
) -> Report:
    """The report of ``day`` (local to ``zone``), read in one read-only snapshot.

    Opens and ends its own transaction on ``session``.
    """
    bounds = report_day(day, zone)
    before = report_day(day - timedelta(days=1), zone)
    async with session.begin():
        await ledger.begin_snapshot(session)
        totals = StatusCounts.of(
            (r.status, r.messages, r.attempts)
            for r in await ledger.totals_by_status(session, bounds.start, bounds.end)
        )
        previous = StatusCounts.of(
            (r.status, r.messages, r.attempts)
            for r in await ledger.totals_by_status(session, before.start, before.end)
        )
        day_rows = await ledger.mailing_day_counts(session, bounds.start, bounds.end)
        error_rows = await ledger.mailing_day_errors(session, bounds.start, bounds.end)
        by_mailing: dict[int, list[ledger.MailingStatusRow]] = defaultdict(list)
        for counted in day_rows:
            by_mailing[counted.mailing_id].append(counted)
        mailing_rows = await ledger.active_mailings(
            session, bounds.start, bounds.end, sorted(by_mailing)
        )
    errors: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for mailing_id, error_class, count in error_rows:
        errors[mailing_id].append((error_class, count))

    mailings = []
    for mailing in mailing_rows:
        own = by_mailing.get(mailing.id, [])
        # One row per (mailing, status): the sent one carries the day's first and last send.
        sent = next((r for r in own if r.status == MessageStatus.sent.value), None)
        mailings.append(
            MailingFigures(
                id=mailing.id,
                text=mailing.text,
                start_at=mailing.start_at,
                end_at=mailing.end_at,
                cancelled_at=mailing.cancelled_at,
                day=StatusCounts.of((r.status, r.messages, r.attempts) for r in own),
                first_sent_at=sent.first_sent_at if sent else None,
                last_sent_at=sent.last_sent_at if sent else None,
                top_errors=top_errors(errors.get(mailing.id, [])),
                to_date=LedgerCounts(
                    by_status={
                        status: int(getattr(mailing, status.value) or 0) for status in MessageStatus
                    },
                    attempts=int(mailing.attempts or 0),
                ),
                admin_link=admin_link(admin_url, mailing.id),
            )
        )
    return Report(
        day=bounds,
        totals=totals,
        previous=previous,
        mailings=ordered(mailings),
        generated_at=now or datetime.now(UTC),
    )
