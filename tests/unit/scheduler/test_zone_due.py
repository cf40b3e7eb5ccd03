"""Due times per (mailing, zone), and why a zone is never due."""

from datetime import UTC, datetime, time, timedelta

from herald_common.send_window import SendWindow
from herald_scheduler.reconciler import NO_WINDOW_BEFORE_END, UNKNOWN_TIME_ZONE, zone_due
from herald_scheduler.repository.ledger import MAILING_ENDED
from herald_scheduler.repository.mailings import MailingFrame

START = datetime(2030, 1, 15, tzinfo=UTC)
MORNING = SendWindow(time(9), time(12))


def frame(hours: int, window: SendWindow | None = MORNING) -> MailingFrame:
    return MailingFrame(1, START, START + timedelta(hours=hours), window)


def test_due_at_is_the_zones_first_opening_inside_the_frame() -> None:
    before = START - timedelta(days=1)
    assert zone_due(frame(48), "UTC", before).due_at == START + timedelta(hours=9)
    assert zone_due(frame(48), "Asia/Tokyo", before).due_at == START  # 09:00 in Tokyo
    assert zone_due(frame(48), "Asia/Kolkata", before).due_at == START + timedelta(
        hours=3, minutes=30
    )


def test_a_started_frame_counts_from_now() -> None:
    now = START + timedelta(hours=10)
    assert zone_due(frame(48), "UTC", now).due_at == now


def test_without_window_due_at_is_the_start() -> None:
    assert zone_due(frame(2, None), "Asia/Tokyo", START - timedelta(hours=1)).due_at == START


def test_a_window_that_never_opens_in_the_frame_gives_a_reason() -> None:
    due = zone_due(frame(2), "UTC", START - timedelta(hours=1))
    assert (due.due_at, due.reason) == (None, NO_WINDOW_BEFORE_END)


def test_an_ended_mailing_is_never_due() -> None:
    due = zone_due(frame(2), "Asia/Tokyo", START + timedelta(hours=3))
    assert (due.due_at, due.reason) == (None, MAILING_ENDED)


def test_an_unknown_zone_is_never_due() -> None:
    due = zone_due(frame(48), "Mars/Olympus_Mons", START)
    assert (due.due_at, due.reason) == (None, UNKNOWN_TIME_ZONE)


def paused(hours: int, window: SendWindow | None = MORNING) -> MailingFrame:
    return MailingFrame(1, START, START + timedelta(hours=hours), window, paused=True)


def test_a_paused_mailings_rows_are_parked_at_its_end_where_no_claim_reaches() -> None:
    now = START + timedelta(hours=10)  # inside the window: due now, were it running
    due = zone_due(paused(48), "UTC", now)
    assert (due.due_at, due.reason) == (START + timedelta(hours=48), None)


def test_a_pause_expires_nothing_but_the_terms_still_do() -> None:
    # The window never opens before the end, paused or not: that is the terms' doing.
    never = zone_due(paused(2), "UTC", START - timedelta(hours=1))
    assert (never.due_at, never.reason) == (None, NO_WINDOW_BEFORE_END)
    ended = zone_due(paused(2), "UTC", START + timedelta(hours=2))
    assert (ended.due_at, ended.reason) == (None, MAILING_ENDED)
