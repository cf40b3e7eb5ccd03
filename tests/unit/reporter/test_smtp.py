"""Which SMTP failures are worth another attempt: down and 4xx yes, 5xx and mismatches no."""

import ssl

import aiosmtplib
import pytest

from herald_reporter.smtp import Verdict, describe, judge


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (ConnectionRefusedError(111, "Connection refused"), Verdict.transient),
        (aiosmtplib.SMTPConnectError("Error connecting to 127.0.0.1"), Verdict.transient),
        (aiosmtplib.SMTPServerDisconnected("Connection lost"), Verdict.transient),
        (aiosmtplib.SMTPReadTimeoutError("Timed out"), Verdict.transient),
        (TimeoutError(), Verdict.transient),
        (ssl.SSLError("handshake cut short"), Verdict.transient),
        (aiosmtplib.SMTPDataError(451, "4.3.0 Try again later"), Verdict.transient),
        (aiosmtplib.SMTPSenderRefused(421, "4.7.0 Too busy", "a@b.c"), Verdict.transient),
        (aiosmtplib.SMTPAuthenticationError(454, "4.7.0 Temporary failure"), Verdict.transient),
        (aiosmtplib.SMTPDataError(554, "5.7.1 Rejected as spam"), Verdict.permanent),
        (aiosmtplib.SMTPSenderRefused(553, "5.7.1 Not yours", "a@b.c"), Verdict.permanent),
        (aiosmtplib.SMTPAuthenticationError(535, "5.7.8 Bad credentials"), Verdict.permanent),
        (aiosmtplib.SMTPNotSupported("STARTTLS extension not supported"), Verdict.permanent),
    ],
)
def test_judge(error: BaseException, verdict: Verdict) -> None:
    assert judge(error) is verdict


def _refused(*codes: int) -> aiosmtplib.SMTPRecipientsRefused:
    return aiosmtplib.SMTPRecipientsRefused(
        [aiosmtplib.SMTPRecipientRefused(code, "no", f"r{code}@x.y") for code in codes]
    )


def test_all_recipients_refused_is_permanent_unless_one_was_only_for_now() -> None:
    assert judge(_refused(550, 553)) is Verdict.permanent
    assert judge(_refused(550, 450)) is Verdict.transient


def test_descriptions_carry_the_code_and_the_servers_text_on_one_line() -> None:
    assert describe(aiosmtplib.SMTPDataError(554, "5.7.1\nRejected")) == (
        "SMTPDataError: 554 5.7.1 Rejected"
    )
    assert describe(_refused(550)) == "SMTPRecipientsRefused: r550@x.y: 550 no"
    assert describe(TimeoutError()) == "TimeoutError: TimeoutError"
    assert len(describe(aiosmtplib.SMTPDataError(554, "x" * 1000))) == 300
