"""Handing the report to the SMTP server: one ``aiosmtplib.send`` per attempt, tenacity
retrying it with backoff while the server is unreachable or answers 4xx.

:func:`judge` decides, from an error alone, whether trying again could help; the
transport only carries out the attempt. A 5xx answer (or a server that lacks what the
settings require, e.g. STARTTLS) is final: the report is rejected, not retried.
The password goes to aiosmtplib and nowhere else; errors are described by their code
and the server's text, which never contains it.
"""

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import Enum

import aiosmtplib
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from herald_reporter.settings import ReporterSettings, SmtpTls

DESCRIPTION_MAX_LENGTH = 300
# What one attempt may fail with; anything else is a bug and propagates.
SMTP_ERRORS: tuple[type[Exception], ...] = (aiosmtplib.SMTPException, OSError, TimeoutError)

log = structlog.get_logger()


class Verdict(Enum):
    transient = "transient"  # down, timed out, 4xx: another try later may succeed
    permanent = "permanent"  # 5xx, or the server cannot do what the settings require


def judge(error: BaseException) -> Verdict:
    """Whether an error of one send attempt is worth another attempt."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        # Every recipient was refused; retry if any of them only for now.
        codes = [refusal.code for refusal in error.recipients]
        return Verdict.transient if any(_is_4xx(code) for code in codes) else Verdict.permanent
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return Verdict.permanent if 500 <= error.code <= 599 else Verdict.transient
    if isinstance(error, aiosmtplib.SMTPNotSupported):
        return Verdict.permanent  # no STARTTLS or no AUTH offered: a settings mismatch
    # Connection refused or lost, timeouts, TLS handshakes cut short: the server is not
    # there for now (an invalid certificate stays an error here too, logged every try).
    return Verdict.transient


def _is_4xx(code: int) -> bool:
    return 400 <= code <= 499


def describe(error: BaseException) -> str:
    """One line for the log and the claim: the SMTP code and text, or the error's kind."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in error.recipients)
    elif isinstance(error, aiosmtplib.SMTPResponseException):
        text = f"{error.code} {error.message}"
    else:
        text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {' '.join(text.split())}"[:DESCRIPTION_MAX_LENGTH]


@dataclass(frozen=True)
class Accepted:
    """The server took the message; some recipients may have been refused (4xx/5xx each)."""

    refused: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejected:
    """A permanent refusal: retrying would only repeat it."""

    error: str


@dataclass(frozen=True)
class Unavailable:
    """Still unreachable, or still 4xx, when the retry time ran out."""

    error: str


Delivery = Accepted | Rejected | Unavailable
Sleep = Callable[[float], Awaitable[None]]


class SmtpTransport:
    def __init__(self, settings: ReporterSettings, *, sleep: Sleep = asyncio.sleep) -> None:
        self._settings = settings
        self._sleep = sleep

    async def deliver(self, message: EmailMessage, recipients: list[str]) -> Delivery:
        """Send, retrying transient failures for up to HERALD_SMTP_RETRY_FOR seconds."""

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "report.smtp_retry",
                attempt=state.attempt_number,
                error=describe(error) if error else None,
                retry_in=round(state.upcoming_sleep, 2),
            )

        retrying = AsyncRetrying(
            retry=retry_if_exception(
                lambda error: isinstance(error, SMTP_ERRORS) and judge(error) is Verdict.transient
            ),
            stop=stop_after_delay(self._settings.smtp_retry_for),
            wait=wait_exponential_jitter(initial=1, max=30),
            before_sleep=before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            refused: dict[str, aiosmtplib.SMTPResponse] = await retrying(
                self._send_once, message, recipients
            )
        except SMTP_ERRORS as error:
            if judge(error) is Verdict.permanent:
                return Rejected(describe(error))
            return Unavailable(describe(error))
        return Accepted({address: f"{r.code} {r.message}" for address, r in refused.items()})

    async def _send_once(
        self, message: EmailMessage, recipients: list[str]
    ) -> dict[str, aiosmtplib.SMTPResponse]:
        settings = self._settings
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        # aiosmtplib's timeout bounds each step; this one the whole attempt, so that a
        # server dribbling answers cannot hold the claim past its lease.
        async with asyncio.timeout(settings.smtp_timeout):
            refused, _ = await aiosmtplib.send(
                message,
                sender=settings.smtp_from,
                recipients=recipients,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                use_tls=settings.smtp_tls is SmtpTls.implicit,
                start_tls=settings.smtp_tls is SmtpTls.starttls,
                tls_context=_tls_context(settings),
                username=settings.smtp_username,
                password=password if settings.smtp_username else None,
                timeout=settings.smtp_timeout,
            )
        return refused


def _tls_context(settings: ReporterSettings) -> ssl.SSLContext | None:
    if settings.smtp_tls is SmtpTls.none:
        return None
    # Certificates and host names are always verified; a private CA goes in the CA file.
    return ssl.create_default_context(cafile=settings.smtp_ca_file)
