"""The audience preview's due rule is the scheduler's: for every case below, the first send
the preview shows for a zone is the due_at the scheduler would give its clients."""

import itertools
from datetime import UTC, datetime, time, timedelta

import pytest

from herald_api.mailings.service import audience_zones, first_send_at
from herald_common.send_window import SendWindow
from herald_scheduler.reconciler import zone_due
from herald_scheduler.repository.mailings import MailingFrame

NOW = datetime(2030, 3, 30, 12, tzinfo=UTC)
ZONES = [
    "UTC",
    "Europe/Moscow",
    "America/New_York",  # DST starts 2030-03-10
    "Europe/Berlin",  # DST starts 2030-03-31, inside the frames
    "Asia/Kathmandu",  # +05:45
    "Pacific/Chatham",  # +13:45 / +12:45
    "Not/A_Zone",
]
WINDOWS = [
    None,
    SendWindow(time(9), time(21)),
    SendWindow(time(22), time(6)),  # wraps midnight
    SendWindow(time(2, 30), time(3, 30)),  # in Berlin's gap on 2030-03-31
    SendWindow(time(12), time(12, 1)),  # one minute a day
]
FRAMES = [
    (NOW + timedelta(hours=2), NOW + timedelta(days=2)),  # ahead
    (NOW - timedelta(hours=3), NOW + timedelta(hours=5)),  # started
    (NOW + timedelta(hours=1), NOW + timedelta(hours=2)),  # short
    (NOW - timedelta(days=2), NOW - timedelta(days=1)),  # over
]


@pytest.mark.parametrize(
    ("zone", "window", "frame"), list(itertools.product(ZONES, WINDOWS, FRAMES))
)
def test_the_preview_gives_each_zone_the_schedulers_due_at(
    zone: str, window: SendWindow | None, frame: tuple[datetime, datetime]
) -> None:
    start, end = frame
    scheduled = zone_due(MailingFrame(1, start, end, window), zone, NOW)

    assert first_send_at(start, end, zone, window, NOW) == scheduled.due_at


def test_zones_are_listed_earliest_first_and_never_due_last() -> None:
    start = datetime(2030, 3, 1, 6, tzinfo=UTC)
    zones = audience_zones(
        [("Asia/Tokyo", 1), ("Europe/Moscow", 2), ("UTC", 3), ("Not/A_Zone", 4)],
        start_at=start,
        end_at=start + timedelta(hours=6),
        window=SendWindow(time(10), time(11)),
        now=start - timedelta(days=1),
    )

    assert [(zone.timezone, zone.clients) for zone in zones] == [
        ("Europe/Moscow", 2),  # 10:00 there is 07:00 UTC
        ("UTC", 3),  # 10:00 UTC
        ("Asia/Tokyo", 1),  # 15:00 to 21:00 there: never
        ("Not/A_Zone", 4),
    ]
    moscow = zones[0]
    assert moscow.first_send_at == datetime(2030, 3, 1, 7, tzinfo=UTC)
    assert moscow.first_send_local is not None
    assert moscow.first_send_local.isoformat() == "2030-03-01T10:00:00+03:00"
    assert [zone.first_send_at for zone in zones[2:]] == [None, None]
