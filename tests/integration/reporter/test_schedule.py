"""When the service sends: at the report time for the day before, catching up missed days
since its first start (never before it), and with days that follow the zone's DST rules."""

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_common.domain import MessageStatus
from herald_reporter.rendering import render
from herald_reporter.report import load_report
from herald_reporter.service import MAX_PAUSE_SECONDS, Reporter
from tests.integration.reporter.conftest import Logs, SmtpServers, reporter_settings
from tests.integration.reporter.factories import (
    Seed,
    add_messages,
    claim_rows,
    create_mailing,
    set_origin,
)

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN)


async def test_catch_up_sends_each_missed_day_once_and_none_before_the_first_start(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
) -> None:
    server = await smtp.start()
    settings = reporter_settings(database_url, server.port)
    await set_origin(report_db, berlin(2025, 3, 1, 10, 0))
    # Down since then; started again on 5 March after the report time.
    now = berlin(2025, 3, 5, 9, 0)
    reporter = Reporter(settings, sessionmaker, clock=lambda: now)

    first_day = await reporter.first_day()
    pause = await reporter.send_due(first_day)
    again = await reporter.send_due(first_day)

    sent = [mail["X-Herald-Report-Date"] for mail in server.mailbox.messages()]
    assert first_day == date(2025, 3, 1)
    assert sorted(sent) == ["2025-03-01", "2025-03-02", "2025-03-03", "2025-03-04"]
    assert sorted(await claim_rows(report_db)) == sorted(sent), "nothing for 28 February"
    assert len(server.mailbox.stored) == 4, "the second look sent nothing more"
    assert pause == again == MAX_PAUSE_SECONDS  # the next one is due tomorrow at 08:00


async def test_before_the_report_time_yesterday_is_not_due_yet(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
) -> None:
    server = await smtp.start()
    settings = reporter_settings(database_url, server.port, report_time=time(8, 0))
    await set_origin(report_db, berlin(2025, 3, 1, 10, 0))
    clock = [berlin(2025, 3, 3, 7, 59, 30)]
    reporter = Reporter(settings, sessionmaker, clock=lambda: clock[0])

    pause = await reporter.send_due(date(2025, 3, 1))
    early = sorted(mail["X-Herald-Report-Date"] for mail in server.mailbox.messages())
    clock[0] = berlin(2025, 3, 3, 8, 0)
    await reporter.send_due(date(2025, 3, 1))
    on_time = sorted(mail["X-Herald-Report-Date"] for mail in server.mailbox.messages())

    assert early == ["2025-03-01"]
    assert 1 <= pause <= 30, "it wakes up for 08:00"
    assert on_time == ["2025-03-01", "2025-03-02"]


async def test_catch_up_stops_at_its_window_and_says_what_it_left_out(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
    logs: Logs,
) -> None:
    server = await smtp.start()
    settings = reporter_settings(database_url, server.port, report_catch_up_days=3)
    await set_origin(report_db, berlin(2025, 1, 1, 12, 0))
    reporter = Reporter(settings, sessionmaker, clock=lambda: berlin(2025, 3, 5, 9, 0))

    first_day = await reporter.first_day()
    await reporter.report_skipped_catch_up(first_day)
    await reporter.send_due(first_day)

    sent = sorted(mail["X-Herald-Report-Date"] for mail in server.mailbox.messages())
    assert sent == ["2025-03-02", "2025-03-03", "2025-03-04"]
    [skipped] = [entry for entry in logs if entry["event"] == "report.catch_up_skipped"]
    assert (skipped["days"], skipped["first"], skipped["last"]) == (60, "2025-01-01", "2025-03-01")


async def test_the_first_start_is_recorded_once_and_owes_no_history(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
    logs: Logs,
) -> None:
    server = await smtp.start()
    settings = reporter_settings(database_url, server.port, report_time=time(0, 0))
    await create_mailing(
        report_db,
        start_at=datetime.now(UTC) - timedelta(days=3),
        end_at=datetime.now(UTC) - timedelta(days=2),
    )
    first = Reporter(settings, sessionmaker)
    second = Reporter(settings, sessionmaker)

    day = await first.first_day()
    assert await second.first_day() == day
    await first.send_due(day)

    assert day == datetime.now(BERLIN).date() or day == datetime.now(BERLIN).date() - timedelta(
        days=1
    ), "today, in the report's zone (yesterday only if midnight passed meanwhile)"
    assert [e["event"] for e in logs if e["event"].startswith("reporter.")] == [
        "reporter.first_start",
        "reporter.origin",
    ]
    assert server.mailbox.stored == [], "days before the first start are never reported"


async def test_the_service_loop_sends_the_due_report_and_stops_when_told(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
    logs: Logs,
) -> None:
    server = await smtp.start()
    settings = reporter_settings(database_url, server.port)
    await set_origin(report_db, berlin(2025, 6, 1, 12, 0))
    reporter = Reporter(settings, sessionmaker, clock=lambda: berlin(2025, 6, 2, 8, 30))
    stopping = asyncio.Event()

    service = asyncio.create_task(reporter.run(stopping))
    for _ in range(200):
        if server.mailbox.stored:
            break
        await asyncio.sleep(0.05)
    stopping.set()
    await asyncio.wait_for(service, timeout=5)

    assert [m["X-Herald-Report-Date"] for m in server.mailbox.messages()] == ["2025-06-01"]
    events = [entry["event"] for entry in logs]
    assert events[0] == "reporter.running"
    assert events[-1] == "reporter.stopped"


async def _seed_around(engine: AsyncEngine, instants: list[datetime]) -> None:
    mailing = await create_mailing(
        engine, start_at=min(instants) - timedelta(days=1), end_at=max(instants) + timedelta(days=1)
    )
    await add_messages(engine, mailing, [Seed(MessageStatus.sent, at, 1) for at in instants])


async def test_the_spring_forward_day_has_23_hours(
    report_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    utc = [
        datetime(2025, 3, 29, 22, 59, 59, tzinfo=UTC),  # 23:59:59 CET, 29 March
        datetime(2025, 3, 29, 23, 0, tzinfo=UTC),  # 00:00 CET, 30 March: the first instant
        datetime(2025, 3, 30, 1, 0, tzinfo=UTC),  # 03:00 CEST, just after the gap
        datetime(2025, 3, 30, 21, 59, 59, tzinfo=UTC),  # 23:59:59 CEST, 30 March
        datetime(2025, 3, 30, 22, 0, tzinfo=UTC),  # 00:00 CEST, 31 March
        datetime(2025, 3, 30, 22, 30, tzinfo=UTC),  # a fixed 24 h from midnight would take it
    ]
    await _seed_around(report_db, utc)

    async with sessionmaker() as session:
        before = await load_report(session, date(2025, 3, 29), BERLIN)
    async with sessionmaker() as session:
        day = await load_report(session, date(2025, 3, 30), BERLIN)
    async with sessionmaker() as session:
        after = await load_report(session, date(2025, 3, 31), BERLIN)

    assert (before.totals.sent, day.totals.sent, after.totals.sent) == (1, 3, 2)
    assert day.day.hours == 23
    assert "(23 hours: clocks changed)" in render(day).text


async def test_the_fall_back_day_has_25_hours(
    report_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    utc = [
        datetime(2025, 10, 25, 21, 59, 59, tzinfo=UTC),  # 23:59:59 CEST, 25 October
        datetime(2025, 10, 25, 22, 0, tzinfo=UTC),  # 00:00 CEST, 26 October
        datetime(2025, 10, 26, 0, 30, tzinfo=UTC),  # 02:30 CEST, the first of two
        datetime(2025, 10, 26, 1, 30, tzinfo=UTC),  # 02:30 CET, the second
        datetime(2025, 10, 26, 22, 30, tzinfo=UTC),  # 23:30 CET: past a fixed 24 h
        datetime(2025, 10, 26, 23, 0, tzinfo=UTC),  # 00:00 CET, 27 October
    ]
    await _seed_around(report_db, utc)

    async with sessionmaker() as session:
        day = await load_report(session, date(2025, 10, 26), BERLIN)
    async with sessionmaker() as session:
        before = await load_report(session, date(2025, 10, 25), BERLIN)

    assert (before.totals.sent, day.totals.sent) == (1, 4)
    assert day.day.hours == 25
    assert day.change.sent == 3


async def test_the_report_time_follows_the_clock_change(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
) -> None:
    server = await smtp.start()
    settings = reporter_settings(database_url, server.port)
    await set_origin(report_db, berlin(2025, 3, 30, 1, 0))
    clock = [datetime(2025, 3, 31, 5, 59, tzinfo=UTC)]  # 07:59 CEST (06:59 in winter time)
    reporter = Reporter(settings, sessionmaker, clock=lambda: clock[0])

    await reporter.send_due(date(2025, 3, 30))
    early = len(server.mailbox.stored)
    clock[0] = datetime(2025, 3, 31, 6, 0, tzinfo=UTC)  # 08:00 CEST
    await reporter.send_due(date(2025, 3, 30))

    assert early == 0
    assert [m["X-Herald-Report-Date"] for m in server.mailbox.messages()] == ["2025-03-30"]
