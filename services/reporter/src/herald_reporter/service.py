"""The reporter: claims a day's report, builds it from the ledger, mails it, records how.

:meth:`Reporter.send` is one report, the same for the service loop and ``herald report
send``. :meth:`Reporter.run` is the service: on start it records the first start
(``report_origin``), then, until ``stopping`` is set, sends every due day that no claim
has settled and sleeps until the next report time or the next lease to run out.

Delivery is at-least-once and never twice otherwise: a claim is committed before the
send and settled after it, so only a holder that dies (or loses the database) between
the SMTP server's acceptance and the settling commit leaves the day to be sent again
once its lease runs out, with the same Message-ID.
"""

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.faults import FAULTS, describe
from herald_common.metrics import REPORT_LAST_SUCCESS, REPORTS_FAILED, REPORTS_SENT
from herald_reporter.mail import compose, message_id
from herald_reporter.rendering import render
from herald_reporter.report import load_report
from herald_reporter.repository import claims
from herald_reporter.schedule import due_days, local_date, next_report_at
from herald_reporter.settings import ReporterSettings
from herald_reporter.smtp import Accepted, Delivery, Rejected, SmtpTransport

SERVICE = "reporter"
# The loop looks again at least this often (a claim freed early, a clock step) and at
# most this often (a due time already reached, a lease just ended).
MAX_PAUSE_SECONDS = 60.0
MIN_PAUSE_SECONDS = 1.0
SETTLED = frozenset({"sent", "rejected"})

log = structlog.get_logger()

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Outcome(StrEnum):
    sent = "sent"
    rejected = "rejected"  # 5xx: settled, not retried by the service
    deferred = "deferred"  # unreachable or 4xx throughout: tried again after the interval
    not_claimed = "not_claimed"  # another holds the claim, or it is settled


@dataclass(frozen=True)
class SendResult:
    day: date
    outcome: Outcome
    message_id: str | None = None
    detail: str | None = None  # the SMTP error, or the recipients refused
    retry_at: datetime | None = None
    # Not claimed: the claim as it stands (who holds it, or how it was settled).
    claim: claims.ClaimState | None = None
    # False if the claim was no longer ours when the outcome was recorded: our lease ran
    # out meanwhile and another replica may have taken the day.
    recorded: bool = True


class NoRecipients(Exception):
    """HERALD_REPORT_RECIPIENTS is empty: there is nobody to send the report to."""


class Reporter:
    def __init__(
        self,
        settings: ReporterSettings,
        sessionmaker: async_sessionmaker[AsyncSession],
        transport: SmtpTransport | None = None,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._sessionmaker = sessionmaker
        self._transport = transport or SmtpTransport(settings)
        self._clock = clock
        self._zone = settings.zone

    async def send(self, day: date, *, force: bool = False) -> SendResult:
        """Claim, build, mail and settle the report of ``day``."""
        if not self._settings.report_recipients:
            raise NoRecipients("HERALD_REPORT_RECIPIENTS is empty")
        with structlog.contextvars.bound_contextvars(report_date=day.isoformat()):
            return await self._send(day, force)

    async def _send(self, day: date, force: bool) -> SendResult:
        settings = self._settings
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        async with self._sessionmaker() as session, session.begin():
            claim = await claims.claim(
                session, day, holder, lease_seconds=settings.report_lease, force=force
            )
        if claim is None:
            async with self._sessionmaker() as session:
                current = (await claims.states(session, [day])).get(day)
            log.info("report.not_claimed", state=current.state if current else None)
            return SendResult(day, Outcome.not_claimed, claim=current)
        log.info("report.claimed", edition=claim.edition, attempt=claim.attempt, forced=force)

        now = self._clock()
        async with self._sessionmaker() as session:
            report = await load_report(
                session, day, self._zone, admin_url=settings.admin_url, now=now
            )
        rendered = render(report)
        mail_id = message_id(day, claim.edition, settings.smtp_from)
        mail = compose(
            rendered,
            day=day,
            edition=claim.edition,
            sender=settings.smtp_from,
            recipients=settings.report_recipients,
            now=now,
        )
        delivery = await self._transport.deliver(mail, settings.report_recipients)
        if isinstance(delivery, Accepted):
            # Counted before the settling commit: the mail is out whatever follows.
            REPORTS_SENT.inc()
            REPORT_LAST_SUCCESS.set(self._clock().timestamp())
        result = await self._settle(claim, delivery, mail_id)
        self._observe(result, rendered.subject)
        return result

    async def _settle(self, claim: claims.Claim, delivery: Delivery, mail_id: str) -> SendResult:
        """Record the delivery on the claim, if it is still ours."""
        day = claim.day
        async with self._sessionmaker() as session, session.begin():
            if isinstance(delivery, Accepted):
                refused = (
                    "refused " + "; ".join(f"{a}: {r}" for a, r in delivery.refused.items())
                    if delivery.refused
                    else None
                )
                recorded = await claims.mark_sent(session, claim, mail_id, refused)
                return SendResult(day, Outcome.sent, mail_id, refused, recorded=recorded)
            if isinstance(delivery, Rejected):
                recorded = await claims.mark_rejected(session, claim, mail_id, delivery.error)
                return SendResult(day, Outcome.rejected, mail_id, delivery.error, recorded=recorded)
            retry_at = await claims.mark_deferred(
                session,
                claim,
                delivery.error,
                retry_seconds=self._settings.report_retry_interval,
            )
            return SendResult(
                day,
                Outcome.deferred,
                mail_id,
                delivery.error,
                retry_at=retry_at,
                recorded=retry_at is not None,
            )

    def _observe(self, result: SendResult, subject: str) -> None:
        if not result.recorded:
            log.warning("report.claim_lost", outcome=result.outcome.value)
        if result.outcome is Outcome.sent:
            log.info(
                "report.sent",
                message_id=result.message_id,
                recipients=len(self._settings.report_recipients),
                subject=subject,
            )
            if result.detail:
                log.warning("report.recipients_refused", refused=result.detail)
        elif result.outcome is Outcome.rejected:
            REPORTS_FAILED.labels(reason="rejected").inc()
            log.error("report.rejected", message_id=result.message_id, error=result.detail)
        elif result.outcome is Outcome.deferred:
            REPORTS_FAILED.labels(reason="unavailable").inc()
            log.warning(
                "report.deferred",
                error=result.detail,
                retry_at=result.retry_at.isoformat() if result.retry_at else None,
            )

    async def first_day(self) -> date:
        """The local day of the reporter's first start, recorded now if this is it."""
        async with self._sessionmaker() as session, session.begin():
            origin = await claims.record_origin(session)
        first = local_date(origin.first_started_at, self._zone)
        log.info(
            "reporter.first_start" if origin.recorded_now else "reporter.origin",
            first_started_at=origin.first_started_at.isoformat(),
            first_report_date=first.isoformat(),
        )
        return first

    async def send_due(self, first_day: date) -> float:
        """Send every due report no claim has settled; seconds until the next look."""
        settings = self._settings
        now = self._clock()
        due = due_days(
            now,
            self._zone,
            settings.report_time,
            first_day=first_day,
            catch_up_days=settings.report_catch_up_days,
        )
        async with self._sessionmaker() as session:
            current = await claims.states(session, due.due)
            last_sent = await claims.last_sent_at(session)
        if last_sent is not None:
            # From the database, so that every replica exports the same, restarts included.
            REPORT_LAST_SUCCESS.set(last_sent.timestamp())
        wake = next_report_at(now, self._zone, settings.report_time)
        for day in due.due:
            state = current.get(day)
            if state is not None and (state.state in SETTLED or state.lease_until > now):
                if state.state not in SETTLED:
                    wake = min(wake, state.lease_until)
                continue
            result = await self.send(day)
            if result.retry_at is not None:
                wake = min(wake, result.retry_at)
            elif result.claim is not None and result.claim.state not in SETTLED:
                wake = min(wake, result.claim.lease_until)
        pause = (wake - self._clock()).total_seconds()
        return min(MAX_PAUSE_SECONDS, max(MIN_PAUSE_SECONDS, pause))

    async def report_skipped_catch_up(self, first_day: date) -> None:
        """Log, once, the days catch-up leaves out because they are too far back."""
        due = due_days(
            self._clock(),
            self._zone,
            self._settings.report_time,
            first_day=first_day,
            catch_up_days=self._settings.report_catch_up_days,
        )
        if due.skipped_before is None:
            return
        async with self._sessionmaker() as session:
            unsent = await claims.unsent_days_between(session, first_day, due.skipped_before)
        if unsent:
            log.warning(
                "report.catch_up_skipped",
                days=len(unsent),
                first=unsent[0].isoformat(),
                last=unsent[-1].isoformat(),
            )

    async def run(self, stopping: asyncio.Event) -> None:
        """The service loop; returns once ``stopping`` is set."""
        failures = 0
        first_day: date | None = None
        log.info("reporter.running")
        while not stopping.is_set():
            try:
                if first_day is None:
                    first_day = await self.first_day()
                    await self.report_skipped_catch_up(first_day)
                pause = await self.send_due(first_day)
                failures = 0
            except FAULTS as error:
                failures += 1
                pause = min(MAX_PAUSE_SECONDS, 2.0**failures)
                log.warning("reporter.failed", error=describe(error), retry_in=pause)
            except Exception:  # a bug: keep the service up, and say so loudly
                failures += 1
                pause = min(MAX_PAUSE_SECONDS, 2.0**failures)
                log.exception("reporter.error", retry_in=pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=pause)
        log.info("reporter.stopped")
