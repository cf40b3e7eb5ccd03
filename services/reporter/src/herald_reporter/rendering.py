"""The report as text: Jinja2 templates (package data) for the HTML and plain-text parts.

HTML templates are autoescaped (mailing texts are integrators' input); the plain-text
template is not, since nothing renders it as markup. ``StrictUndefined`` turns a
misspelt name into an error instead of a blank.
"""

import functools
from dataclasses import dataclass
from datetime import datetime

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from herald_common.domain import MessageStatus
from herald_reporter.figures import FINAL_COLUMNS, MailingFigures, Report

EN_DASH = "\N{EN DASH}"
NO_VALUE = EN_DASH
MINUS = "\N{MINUS SIGN}"

# Bar and badge colours per final status (also the legend's).
STATUS_COLOURS = {
    MessageStatus.sent: "#2e7d32",
    MessageStatus.failed: "#c62828",
    MessageStatus.expired: "#ef6c00",
    MessageStatus.cancelled: "#9e9e9e",
}


@dataclass(frozen=True)
class RenderedReport:
    subject: str
    text: str
    html: str


def number(value: int) -> str:
    return f"{value:,}"


def percent(rate: float | None) -> str:
    return NO_VALUE if rate is None else f"{rate * 100:.1f}%"


def signed(value: int) -> str:
    if value == 0:
        return "±0"
    return f"+{value:,}" if value > 0 else f"{MINUS}{-value:,}"


def points(value: float | None) -> str:
    if value is None:
        return NO_VALUE
    if round(value, 1) == 0:
        return "±0.0 pp"
    return f"+{value:.1f} pp" if value > 0 else f"{MINUS}{-value:.1f} pp"


def ratio(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:.2f}"


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("herald_reporter", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(number=number, percent=percent, signed=signed, points=points, ratio=ratio)
    return env


def subject(report: Report) -> str:
    totals = report.totals
    parts = [f"{number(totals.processed)} processed"]
    if totals.delivery_rate is not None:
        parts.append(f"{percent(totals.delivery_rate)} delivered")
    attention = len(report.attention)
    if attention:
        parts.append(f"{attention} mailing{'s' if attention != 1 else ''} with unsent messages")
    return f"herald daily report {report.day.day.isoformat()}: {', '.join(parts)}"


def render(report: Report) -> RenderedReport:
    def local(instant: datetime | None) -> str:
        """A time of the report's zone: HH:MM on the report's day, else with the date."""
        if instant is None:
            return NO_VALUE
        moment = instant.astimezone(report.day.zone)
        if moment.date() == report.day.day:
            return moment.strftime("%H:%M")
        return moment.strftime("%d %b %H:%M")

    def sends(mailing: MailingFigures) -> str:
        """The day's first and last send, or that there was none."""
        if mailing.first_sent_at is None or mailing.last_sent_at is None:
            return "no sends"
        first, last = local(mailing.first_sent_at), local(mailing.last_sent_at)
        return first if first == last else f"{first}{EN_DASH}{last}"

    context = {
        "report": report,
        "day": report.day,
        "totals": report.totals,
        "previous": report.previous,
        "change": report.change,
        "mailings": report.mailings,
        "attention": report.attention,
        "statuses": FINAL_COLUMNS,
        "colours": STATUS_COLOURS,
        "local": local,
        "sends": sends,
        "generated": report.generated_at.astimezone(report.day.zone).strftime("%Y-%m-%d %H:%M %Z"),
        "title": f"{report.day.day:%A %d %B %Y}",
    }
    env = environment()
    return RenderedReport(
        subject=subject(report),
        text=env.get_template("report.txt").render(context),
        html=env.get_template("report.html").render(context),
    )
