"""The derived figures: rates leave cancelled messages out, mailings needing attention first."""

from datetime import UTC, datetime

import pytest

from herald_common.domain import MessageStatus
from herald_reporter.figures import (
    LedgerCounts,
    MailingFigures,
    StatusCounts,
    admin_link,
    change,
    ordered,
    top_errors,
)

AT = datetime(2025, 6, 11, tzinfo=UTC)


def mailing(mailing_id: int, counts: StatusCounts, text: str = "Hello") -> MailingFigures:
    return MailingFigures(
        id=mailing_id,
        text=text,
        start_at=AT,
        end_at=AT,
        cancelled_at=None,
        day=counts,
        first_sent_at=None,
        last_sent_at=None,
        top_errors=[],
        to_date=LedgerCounts(),
    )


def test_counts_from_rows_keep_final_statuses_and_the_attempts_of_uncancelled_ones() -> None:
    counts = StatusCounts.of(
        [
            ("sent", 8, 10),
            ("failed", 1, 12),
            ("expired", 1, 0),
            ("cancelled", 5, 7),
            ("queued", 3, 3),
        ]
    )
    assert counts == StatusCounts(sent=8, failed=1, expired=1, cancelled=5, attempts=22)
    assert counts.processed == 15
    assert counts.delivery_rate == pytest.approx(0.8)
    assert counts.attempts_per_message == pytest.approx(2.2)
    assert counts.unsent == 2
    assert counts.share(MessageStatus.cancelled) == pytest.approx(1 / 3)


def test_nothing_processed_has_no_rates() -> None:
    assert StatusCounts().delivery_rate is None
    assert StatusCounts().attempts_per_message is None
    assert StatusCounts(cancelled=4).delivery_rate is None
    assert StatusCounts().share(MessageStatus.sent) == 0.0


def test_change_against_the_day_before() -> None:
    today = StatusCounts(sent=9, failed=1)
    before = StatusCounts(sent=4, failed=4)
    delta = change(today, before)
    assert (delta.processed, delta.sent, delta.unsent) == (2, 5, -3)
    assert delta.delivery_rate_points == pytest.approx(40.0)
    assert change(today, StatusCounts()).delivery_rate_points is None


def test_mailings_with_unsent_messages_come_first_then_the_busiest() -> None:
    quiet = mailing(1, StatusCounts(sent=1))
    busy = mailing(2, StatusCounts(sent=100))
    few_unsent = mailing(3, StatusCounts(sent=5, expired=1))
    many_unsent = mailing(4, StatusCounts(failed=7))
    only_cancelled = mailing(5, StatusCounts(cancelled=50))

    order = [m.id for m in ordered([quiet, busy, few_unsent, many_unsent, only_cancelled])]

    assert order == [4, 3, 2, 5, 1]


def test_top_error_classes_by_count_then_name() -> None:
    counts = [("timeout", 3), ("connection", 3), ("server_error", 9), ("api_code", 1)]
    assert top_errors(counts) == [("server_error", 9), ("connection", 3), ("timeout", 3)]


def test_admin_links_only_with_an_admin_url() -> None:
    assert admin_link(None, 7) is None
    assert admin_link("https://h.example/admin/", 7) == "https://h.example/admin/mailings/7"


def test_long_texts_are_cut_to_an_excerpt_on_one_line() -> None:
    long = mailing(1, StatusCounts(), text="Big\nsale " + "x" * 100)
    assert long.excerpt.startswith("Big sale x")
    assert len(long.excerpt) == 60
    assert long.excerpt.endswith("…")
    assert mailing(2, StatusCounts(), text="  Short  ").excerpt == "Short"


def test_ledger_counts_to_date() -> None:
    counts = LedgerCounts(
        by_status={MessageStatus.sent: 5, MessageStatus.scheduled: 2, MessageStatus.retrying: 1}
    )
    assert (counts.total, counts.sent, counts.pending) == (8, 5, 3)
