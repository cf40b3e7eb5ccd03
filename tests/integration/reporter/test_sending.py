"""Sending a day's report to a real SMTP server: once, across replicas, through outages.

Each test runs reporters against aiosmtpd on a free port (see conftest) and counts what
the server stored: the guarantee is one mail per day, at-least-once when a holder dies
between the server's acceptance and the commit, and then with the same Message-ID.
"""

import asyncio
from datetime import date, timedelta
from email.message import EmailMessage

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_common.db.engine import create_engine, create_sessionmaker
from herald_common.domain import MessageStatus
from herald_reporter.schedule import report_day
from herald_reporter.service import Outcome, Reporter
from herald_reporter.settings import ReporterSettings, SmtpTls
from herald_reporter.smtp import Delivery, SmtpTransport
from tests.integration.reporter.conftest import (
    SMTP_PASSWORD,
    SMTP_USER,
    Certificate,
    Logs,
    SmtpServers,
    reporter_settings,
)
from tests.integration.reporter.factories import (
    Seed,
    add_messages,
    claim_rows,
    create_mailing,
    expire_leases,
)

DAY = date(2025, 6, 11)


async def _seed_day(engine: AsyncEngine, settings: ReporterSettings) -> int:
    bounds = report_day(DAY, settings.zone)
    mailing = await create_mailing(
        engine,
        start_at=bounds.start + timedelta(hours=9),
        end_at=bounds.start + timedelta(hours=18),
        text_="Summer sale <b>today</b>",
    )
    at = bounds.start + timedelta(hours=10)
    await add_messages(
        engine,
        mailing,
        [Seed(MessageStatus.sent, at, 1)] * 8 + [Seed(MessageStatus.failed, at, 3, "timeout")] * 2,
    )
    return mailing


def _counter(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_the_report_is_mailed_once_as_multipart_text_and_html(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
    logs: Logs,
) -> None:
    server = await smtp.start()
    settings = reporter_settings(database_url, server.port, admin_url="https://h.example/admin")
    mailing = await _seed_day(report_db, settings)
    sent_before = _counter("herald_reports_sent_total")

    result = await Reporter(settings, sessionmaker).send(DAY)
    again = await Reporter(settings, sessionmaker).send(DAY)

    assert result.outcome is Outcome.sent
    assert again.outcome is Outcome.not_claimed
    assert again.claim is not None
    assert again.claim.state == "sent"
    [mail] = server.mailbox.messages()
    assert mail["Message-ID"] == "<herald-report.2025-06-11@reports.example.com>"
    assert mail["X-Herald-Report-Date"] == "2025-06-11"
    assert mail["To"] == "ops@example.com, lead@example.com"
    assert "80.0% delivered" in mail["Subject"]
    assert mail.get_content_type() == "multipart/alternative"
    text_part = mail.get_body(preferencelist=("plain",))
    html_part = mail.get_body(preferencelist=("html",))
    assert isinstance(text_part, EmailMessage)
    assert isinstance(html_part, EmailMessage)
    html = html_part.get_content()
    assert "Summer sale &lt;b&gt;today&lt;/b&gt;" in html
    assert f'href="https://h.example/admin/mailings/{mailing}"' in html
    assert "Summer sale <b>today</b>" in text_part.get_content()
    assert _counter("herald_reports_sent_total") == sent_before + 1
    claim = (await claim_rows(report_db))["2025-06-11"]
    assert (claim["state"], claim["message_id"], claim["attempts"]) == (
        "sent",
        mail["Message-ID"],
        1,
    )
    events = [entry for entry in logs if entry["event"] == "report.sent"]
    assert len(events) == 1
    assert events[0]["report_date"] == "2025-06-11"


async def test_a_forced_resend_is_a_new_edition_with_its_own_message_id(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
) -> None:
    server = await smtp.start()
    settings = reporter_settings(database_url, server.port)
    reporter = Reporter(settings, sessionmaker)

    assert (await reporter.send(DAY)).outcome is Outcome.sent
    forced = await reporter.send(DAY, force=True)

    assert forced.outcome is Outcome.sent
    ids = [mail["Message-ID"] for mail in server.mailbox.messages()]
    assert ids == [
        "<herald-report.2025-06-11@reports.example.com>",
        "<herald-report.2025-06-11.2@reports.example.com>",
    ]


async def test_two_replicas_racing_for_a_day_send_exactly_one_mail(
    report_db: AsyncEngine, database_url: str, smtp: SmtpServers
) -> None:
    server = await smtp.start()
    settings = reporter_settings(database_url, server.port)
    await _seed_day(report_db, settings)
    engines = [create_engine(settings, pool_size=2) for _ in range(4)]
    try:
        replicas = [Reporter(settings, create_sessionmaker(engine)) for engine in engines]
        # Five days, each raced by four replicas on engines of their own.
        days = [DAY + timedelta(days=n) for n in range(5)]
        results = await asyncio.gather(*(replica.send(day) for day in days for replica in replicas))
    finally:
        for engine in engines:
            await engine.dispose()

    by_day = {day: [r.outcome for r in results if r.day == day] for day in days}
    for day, outcomes in by_day.items():
        assert sorted(outcomes) == sorted([Outcome.sent] + [Outcome.not_claimed] * 3), day
    reports = [mail["X-Herald-Report-Date"] for mail in server.mailbox.messages()]
    assert sorted(reports) == [day.isoformat() for day in days]


async def test_a_server_down_for_a_while_then_back_gets_the_mail_once(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
    logs: Logs,
) -> None:
    server = await smtp.start(started=False)  # the port is reserved; nothing listens yet
    settings = reporter_settings(database_url, server.port, smtp_retry_for=30.0)

    async def come_back() -> None:
        await asyncio.sleep(2.5)
        await server.start()

    result, _ = await asyncio.gather(Reporter(settings, sessionmaker).send(DAY), come_back())

    assert result.outcome is Outcome.sent
    assert len(server.mailbox.stored) == 1
    retries = [entry for entry in logs if entry["event"] == "report.smtp_retry"]
    assert retries, "the first attempts found nobody listening"
    assert all("Connect" in entry["error"] or "refused" in entry["error"] for entry in retries)


async def test_4xx_answers_are_retried_until_the_server_accepts(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
) -> None:
    server = await smtp.start(answers=["451 4.3.0 Try again later"] * 2)
    settings = reporter_settings(database_url, server.port)

    result = await Reporter(settings, sessionmaker).send(DAY)

    assert result.outcome is Outcome.sent
    assert server.mailbox.data_commands == 3
    assert len(server.mailbox.stored) == 1


async def test_a_5xx_rejection_is_recorded_and_not_retried(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
    logs: Logs,
) -> None:
    server = await smtp.start(answers=["554 5.7.1 Message rejected as spam"] * 10)
    settings = reporter_settings(database_url, server.port)
    # The morning after: the service loop owes this day's report, and this day's only.
    morning = report_day(DAY + timedelta(days=1), settings.zone).start + timedelta(hours=9)
    reporter = Reporter(settings, sessionmaker, clock=lambda: morning)
    rejected_before = _counter("herald_reports_failed_total", {"reason": "rejected"})

    result = await reporter.send(DAY)
    # The service loop, later: the day is settled, so nothing is tried again.
    await expire_leases(report_db)
    await reporter.send_due(first_day=DAY)
    again = await reporter.send(DAY)

    assert result.outcome is Outcome.rejected
    assert result.detail is not None
    assert "554" in result.detail
    assert (server.connections, server.mailbox.data_commands) == (1, 1)
    assert server.mailbox.stored == []
    assert again.outcome is Outcome.not_claimed
    claim = (await claim_rows(report_db))["2025-06-11"]
    assert claim["state"] == "rejected"
    assert "554 5.7.1 Message rejected as spam" in str(claim["last_error"])
    assert _counter("herald_reports_failed_total", {"reason": "rejected"}) == rejected_before + 1
    assert [e["event"] for e in logs if e["event"] == "report.rejected"] == ["report.rejected"]

    forced = await reporter.send(DAY, force=True)  # an operator's decision to try again
    assert forced.outcome is Outcome.rejected
    assert server.mailbox.data_commands == 2


async def test_a_server_down_longer_than_the_retry_time_defers_the_day_until_later(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
) -> None:
    server = await smtp.start(started=False)
    settings = reporter_settings(
        database_url, server.port, smtp_retry_for=1.0, report_retry_interval=300.0
    )
    reporter = Reporter(settings, sessionmaker)
    unavailable_before = _counter("herald_reports_failed_total", {"reason": "unavailable"})

    deferred = await reporter.send(DAY)
    await server.start()
    still_waiting = await reporter.send(DAY)
    await expire_leases(report_db)  # the retry interval has passed
    retried = await reporter.send(DAY)

    assert deferred.outcome is Outcome.deferred
    assert deferred.retry_at is not None
    assert still_waiting.outcome is Outcome.not_claimed
    assert still_waiting.claim is not None
    assert still_waiting.claim.state == "deferred"
    assert retried.outcome is Outcome.sent
    assert len(server.mailbox.stored) == 1
    assert _counter("herald_reports_failed_total", {"reason": "unavailable"}) == (
        unavailable_before + 1
    )
    claim = (await claim_rows(report_db))["2025-06-11"]
    assert (claim["state"], claim["attempts"], claim["edition"]) == ("sent", 2, 1)


class _DiesAfterDelivery(SmtpTransport):
    """Hands the mail over, then the process 'dies' before the claim is settled."""

    async def deliver(self, message: EmailMessage, recipients: list[str]) -> Delivery:
        await super().deliver(message, recipients)
        raise SystemExit("killed between the SMTP server's acceptance and the commit")


async def test_a_holder_dying_after_acceptance_is_the_one_duplicate_with_the_same_message_id(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
) -> None:
    server = await smtp.start()
    settings = reporter_settings(database_url, server.port)
    dying = Reporter(settings, sessionmaker, _DiesAfterDelivery(settings))

    with pytest.raises(SystemExit):
        await dying.send(DAY)
    held = await Reporter(settings, sessionmaker).send(DAY)  # the lease still runs
    await expire_leases(report_db)
    taken_over = await Reporter(settings, sessionmaker).send(DAY)

    assert held.outcome is Outcome.not_claimed
    assert taken_over.outcome is Outcome.sent
    ids = [mail["Message-ID"] for mail in server.mailbox.messages()]
    assert ids == ["<herald-report.2025-06-11@reports.example.com>"] * 2


# aiosmtpd cannot tell that an implicit-TLS channel is encrypted, and warns about AUTH.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("mode", [SmtpTls.starttls, SmtpTls.implicit])
async def test_tls_and_authentication_and_the_password_is_never_logged(
    mode: SmtpTls,
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
    logs: Logs,
    certificate: Certificate,
) -> None:
    server = await smtp.start(
        auth=True,
        starttls=certificate if mode is SmtpTls.starttls else None,
        implicit_tls=certificate if mode is SmtpTls.implicit else None,
    )
    settings = reporter_settings(
        database_url,
        server.port,
        smtp_tls=mode,
        smtp_ca_file=str(certificate.cert),
        smtp_username=SMTP_USER,
        smtp_password=SMTP_PASSWORD,
    )

    result = await Reporter(settings, sessionmaker).send(DAY)

    assert result.outcome is Outcome.sent
    assert set(server.logins) == {SMTP_USER}
    assert len(server.mailbox.stored) == 1
    assert SMTP_PASSWORD not in repr(logs)
    assert SMTP_PASSWORD not in repr(settings)


async def test_a_wrong_password_is_a_rejection_not_a_retry_loop(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
    logs: Logs,
    certificate: Certificate,
) -> None:
    server = await smtp.start(auth=True, starttls=certificate)
    wrong = "not-the-password"
    settings = reporter_settings(
        database_url,
        server.port,
        smtp_tls=SmtpTls.starttls,
        smtp_ca_file=str(certificate.cert),
        smtp_username=SMTP_USER,
        smtp_password=wrong,
    )

    result = await Reporter(settings, sessionmaker).send(DAY)

    assert result.outcome is Outcome.rejected
    assert result.detail is not None
    assert "535" in result.detail
    # One connection: aiosmtplib tried the mechanisms offered, and nothing again after.
    assert server.connections == 1
    assert set(server.logins) == {SMTP_USER}
    assert wrong not in repr(logs)
    assert wrong not in str((await claim_rows(report_db))["2025-06-11"])


async def test_an_unverifiable_certificate_is_not_sent_to(
    report_db: AsyncEngine,
    sessionmaker: async_sessionmaker[AsyncSession],
    database_url: str,
    smtp: SmtpServers,
    certificate: Certificate,
) -> None:
    server = await smtp.start(starttls=certificate)
    # No CA file: the system's trust store does not know the test's certificate.
    settings = reporter_settings(
        database_url, server.port, smtp_tls=SmtpTls.starttls, smtp_retry_for=0.5
    )

    result = await Reporter(settings, sessionmaker).send(DAY)

    assert result.outcome is Outcome.deferred
    assert result.detail is not None
    assert "CERTIFICATE_VERIFY_FAILED" in result.detail
    assert server.mailbox.data_commands == 0
