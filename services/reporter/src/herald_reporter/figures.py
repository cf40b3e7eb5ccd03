"""A day's delivery figures, and what the report derives from them; no I/O here.

**A day's figures** are the messages that *reached their final status during the day*:
``day.start <= finished_at < day.end``, counted by the final status they hold now
(``sent``, ``failed``, ``expired``, ``cancelled``). The ledger sets ``finished_at`` in the
same statement that moves a message to a final status (for ``sent`` it equals
``sent_at``), so every message counts on exactly one day. The rare late ``sent`` that
overrules ``expired`` or ``cancelled`` moves ``finished_at`` to its own time: a report
made after it counts the message there, one made before counted the expiry.

- **delivery rate**: ``sent / (sent + failed + expired)``. Cancelled messages are left
  out: a deleted mailing or client is an operator's decision, not a delivery failure.
- **attempts per message**: requests to the send API made for those same messages
  (their ``attempts``), divided by their number.
- **a mailing active that day**: its frame ``[start_at, end_at)`` overlaps the day and it
  was not deleted before the day began, or one of its messages reached a final status
  during the day (a late answer, a sweep after an outage).
- **ended with unsent messages**: some of its messages ended ``failed`` or ``expired``
  during the day. Those mailings are called out first.
- **to date**: a mailing's ``mailing_counters`` row (all its messages by current status)
  as read when the report was made.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from herald_common.domain import MessageStatus
from herald_reporter.schedule import ReportDay

TOP_ERROR_CLASSES = 3
TEXT_EXCERPT_CHARS = 60

FINAL_COLUMNS = (
    MessageStatus.sent,
    MessageStatus.failed,
    MessageStatus.expired,
    MessageStatus.cancelled,
)


@dataclass(frozen=True)
class StatusCounts:
    """Messages that reached each final status, and the attempts of the non-cancelled ones."""

    sent: int = 0
    failed: int = 0
    expired: int = 0
    cancelled: int = 0
    attempts: int = 0

    @classmethod
    def of(cls, rows: Iterable[tuple[str, int, int]]) -> "StatusCounts":
        """From (status, messages, attempts) rows; unknown or unsent statuses are ignored."""
        counts = dict.fromkeys(FINAL_COLUMNS, 0)
        attempts = 0
        for status, messages, tries in rows:
            if status not in counts:
                continue
            final = MessageStatus(status)
            counts[final] += messages
            if final is not MessageStatus.cancelled:
                attempts += tries
        return cls(
            sent=counts[MessageStatus.sent],
            failed=counts[MessageStatus.failed],
            expired=counts[MessageStatus.expired],
            cancelled=counts[MessageStatus.cancelled],
            attempts=attempts,
        )

    @property
    def processed(self) -> int:
        """Every message that reached a final status."""
        return self.sent + self.failed + self.expired + self.cancelled

    @property
    def delivered_or_not(self) -> int:
        """The delivery rate's denominator: processed, less cancelled."""
        return self.sent + self.failed + self.expired

    @property
    def unsent(self) -> int:
        return self.failed + self.expired

    @property
    def delivery_rate(self) -> float | None:
        return self.sent / self.delivered_or_not if self.delivered_or_not else None

    @property
    def attempts_per_message(self) -> float | None:
        return self.attempts / self.delivered_or_not if self.delivered_or_not else None

    def share(self, status: MessageStatus) -> float:
        """The status's part of all processed messages, 0..1 (the bar's segments)."""
        return getattr(self, status.value) / self.processed if self.processed else 0.0


@dataclass(frozen=True)
class Change:
    """The day against the day before."""

    processed: int
    sent: int
    unsent: int
    delivery_rate_points: float | None  # percentage points; None if either rate is unknown


def change(day: StatusCounts, before: StatusCounts) -> Change:
    rate, previous = day.delivery_rate, before.delivery_rate
    return Change(
        processed=day.processed - before.processed,
        sent=day.sent - before.sent,
        unsent=day.unsent - before.unsent,
        delivery_rate_points=(rate - previous) * 100
        if rate is not None and previous is not None
        else None,
    )


@dataclass(frozen=True)
class LedgerCounts:
    """A mailing's whole ledger by current status (its ``mailing_counters`` row)."""

    by_status: Mapping[MessageStatus, int] = field(default_factory=dict)
    attempts: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def sent(self) -> int:
        return self.count(MessageStatus.sent)

    @property
    def pending(self) -> int:
        """Messages not final yet (scheduled, queued, retrying)."""
        return sum(count for status, count in self.by_status.items() if not status.is_final)

    def count(self, status: MessageStatus) -> int:
        return self.by_status.get(status, 0)


@dataclass(frozen=True)
class MailingFigures:
    id: int
    text: str
    start_at: datetime
    end_at: datetime
    cancelled_at: datetime | None
    day: StatusCounts
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    top_errors: list[tuple[str, int]]
    to_date: LedgerCounts
    admin_link: str | None = None

    @property
    def excerpt(self) -> str:
        flat = " ".join(self.text.split())
        if len(flat) <= TEXT_EXCERPT_CHARS:
            return flat
        return flat[: TEXT_EXCERPT_CHARS - 1].rstrip() + "…"

    @property
    def ended_with_unsent(self) -> bool:
        return self.day.unsent > 0


@dataclass(frozen=True)
class Report:
    day: ReportDay
    totals: StatusCounts
    previous: StatusCounts
    mailings: list[MailingFigures]  # those needing attention first (see ordered())
    generated_at: datetime

    @property
    def change(self) -> Change:
        return change(self.totals, self.previous)

    @property
    def attention(self) -> list[MailingFigures]:
        return [mailing for mailing in self.mailings if mailing.ended_with_unsent]


def ordered(mailings: Iterable[MailingFigures]) -> list[MailingFigures]:
    """Mailings that ended with unsent messages first (most unsent first), then the busiest."""
    return sorted(
        mailings,
        key=lambda m: (not m.ended_with_unsent, -m.day.unsent, -m.day.processed, m.id),
    )


def top_errors(
    counts: Iterable[tuple[str, int]], limit: int = TOP_ERROR_CLASSES
) -> list[tuple[str, int]]:
    """The most frequent error classes, ties by name, at most ``limit``."""
    return sorted(counts, key=lambda item: (-item[1], item[0]))[:limit]


def admin_link(admin_url: str | None, mailing_id: int) -> str | None:
    return f"{admin_url.rstrip('/')}/mailings/{mailing_id}" if admin_url else None
