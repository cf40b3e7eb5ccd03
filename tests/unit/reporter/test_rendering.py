"""The email: autoescaped HTML with a bar per mailing, plain text, stable headers."""

from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from herald_common.domain import MessageStatus
from herald_reporter.figures import LedgerCounts, MailingFigures, Report, StatusCounts, ordered
from herald_reporter.mail import compose, message_id
from herald_reporter.rendering import STATUS_COLOURS, render, subject
from herald_reporter.schedule import report_day

BERLIN = ZoneInfo("Europe/Berlin")
DAY = report_day(date(2025, 3, 30), BERLIN)
HOSTILE = '<script>alert("x")</script> & "friends"'


def _report(admin: bool = True) -> Report:
    def figures(mailing_id: int, text: str, counts: StatusCounts) -> MailingFigures:
        return MailingFigures(
            id=mailing_id,
            text=text,
            start_at=DAY.start,
            end_at=DAY.end,
            cancelled_at=None,
            day=counts,
            first_sent_at=DAY.start + timedelta(hours=9) if counts.sent else None,
            last_sent_at=DAY.start + timedelta(hours=17) if counts.sent else None,
            top_errors=[("timeout", counts.failed)] if counts.failed else [],
            to_date=LedgerCounts(by_status={MessageStatus.sent: counts.sent}),
            admin_link=f"https://h.example/admin/mailings/{mailing_id}" if admin else None,
        )

    mailings = [
        figures(1, "Calm", StatusCounts(sent=10, attempts=10)),
        figures(2, HOSTILE, StatusCounts(sent=6, failed=3, expired=1, attempts=20)),
    ]
    return Report(
        day=DAY,
        totals=StatusCounts(sent=16, failed=3, expired=1, attempts=30),
        previous=StatusCounts(sent=20, attempts=20),
        mailings=ordered(mailings),
        generated_at=datetime(2025, 3, 31, 6, tzinfo=UTC),
    )


def test_the_html_is_autoescaped_and_the_text_is_not() -> None:
    rendered = render(_report())
    assert "<script>" not in rendered.html
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;friends&#34;" in rendered.html
    )
    assert HOSTILE in rendered.text


def test_the_html_has_a_bar_per_mailing_and_the_attention_box_first() -> None:
    html = render(_report()).html
    # One bar for the totals and one per mailing: each has a segment in the sent colour.
    assert html.count(f"background:{STATUS_COLOURS[MessageStatus.sent]};font-size:0") == 3
    assert "<style" not in html, "email clients drop style blocks: styles are inline"
    assert html.index("1 mailing ended with unsent messages") < html.index("Mailings active")
    assert html.index("#2</a>") < html.index("#1</a>"), "the mailing with unsent ones first"
    assert "(23 hours: clocks changed)" in html
    assert 'href="https://h.example/admin/mailings/2"' in html


def test_without_an_admin_url_there_are_no_links() -> None:
    rendered = render(_report(admin=False))
    assert "href=" not in rendered.html
    assert "https://" not in rendered.text


def test_the_text_part_has_the_totals_and_the_change() -> None:
    text = render(_report()).text
    assert "Sunday 30 March 2025" in text
    assert "Delivery rate                80.0%   \N{MINUS SIGN}20.0 pp" in text
    assert "Sent                            16   \N{MINUS SIGN}4" in text
    # Nine hours after midnight is 10:00 on this day: the clocks went forward at 02:00.
    assert "10:00\N{EN DASH}18:00" in text
    assert "!! 1 mailing ended with unsent messages" in text


def test_the_subject_says_how_the_day_went() -> None:
    assert subject(_report()) == (
        "herald daily report 2025-03-30: 20 processed, 80.0% delivered,"
        " 1 mailing with unsent messages"
    )


def test_the_message_id_depends_on_the_day_and_edition_only() -> None:
    day = date(2025, 3, 30)
    assert message_id(day, 1, "herald@example.com") == "<herald-report.2025-03-30@example.com>"
    assert message_id(day, 1, "x@example.com") == message_id(day, 1, "y@example.com")
    assert message_id(day, 3, "herald@example.com") == "<herald-report.2025-03-30.3@example.com>"


def test_the_email_is_multipart_alternative_text_then_html() -> None:
    mail = compose(
        render(_report()),
        day=date(2025, 3, 30),
        edition=1,
        sender="herald@example.com",
        recipients=["a@example.com", "b@example.com"],
        now=datetime(2025, 3, 31, 6, tzinfo=UTC),
    )
    assert isinstance(mail, EmailMessage)
    assert mail.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]
    assert mail["Message-ID"] == "<herald-report.2025-03-30@example.com>"
    assert mail["From"] == "herald <herald@example.com>"
    assert mail["To"] == "a@example.com, b@example.com"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Date"] == "Mon, 31 Mar 2025 06:00:00 +0000"
