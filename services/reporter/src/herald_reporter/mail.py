"""The report as an email: multipart/alternative (plain text, then HTML) with stable headers.

The Message-ID is a function of the report date and edition alone, so a report sent
again after a crash (the SMTP server accepted it, the claim was not yet recorded) carries
the same id and a receiver can drop the duplicate. A forced resend of a delivered report
is a new edition with an id of its own, so that it is not dropped.
"""

from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from herald_reporter.rendering import RenderedReport

REPORT_DATE_HEADER = "X-Herald-Report-Date"


def message_id(day: date, edition: int, sender: str) -> str:
    """``<herald-report.2025-03-30@example.com>``; editions after the first add ``.N``."""
    domain = sender.rpartition("@")[2] or "localhost"
    suffix = f".{edition}" if edition > 1 else ""
    return f"<herald-report.{day.isoformat()}{suffix}@{domain}>"


def compose(
    rendered: RenderedReport,
    *,
    day: date,
    edition: int,
    sender: str,
    recipients: list[str],
    now: datetime,
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = rendered.subject
    message["From"] = Address(display_name="herald", addr_spec=sender)
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id(day, edition, sender)
    # RFC 3834: machine-made; vacation responders and the like leave it alone.
    message["Auto-Submitted"] = "auto-generated"
    message[REPORT_DATE_HEADER] = day.isoformat()
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message
