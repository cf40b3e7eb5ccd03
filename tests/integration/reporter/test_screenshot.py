"""The HTML mail as a mail client shows it: rendered by Debian's Chromium through Playwright.

The screenshot goes to tests/artifacts/ (git-ignored) and, for the README, to
docs/images/report-email.png. No browser is ever downloaded: without /usr/bin/chromium
the test is skipped, except in CI (CI=true), where that is a failure.
"""

import os
import shutil
import struct
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_common.domain import MessageStatus
from herald_reporter.rendering import render
from herald_reporter.report import load_report
from herald_reporter.schedule import report_day
from tests.integration.reporter.factories import Seed, add_messages, create_mailing

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "tests" / "artifacts"
README_IMAGE = ROOT / "docs" / "images" / "report-email.png"
CHROMIUM = Path("/usr/bin/chromium")
WIDTH = 820
BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2025, 3, 30)


def _chromium_or_skip() -> Path:
    if CHROMIUM.is_file():
        return CHROMIUM
    reason = f"{CHROMIUM} is missing (apt-get install chromium); no browser is downloaded"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must render the report mail: {reason}")
    pytest.skip(reason)


async def _seed(engine: AsyncEngine) -> None:
    bounds = report_day(DAY, BERLIN)

    def at(hours: float) -> datetime:
        return bounds.start + timedelta(hours=hours)

    spring = await create_mailing(
        engine, start_at=at(-24), end_at=at(20), text_="Spring sale: 30% off everything <today>"
    )
    await add_messages(
        engine,
        spring,
        [Seed(MessageStatus.sent, at(8 + i / 100), 1 + i % 2) for i in range(900)]
        + [Seed(MessageStatus.failed, at(12), 12, "server_error")] * 40
        + [Seed(MessageStatus.failed, at(13), 12, "timeout")] * 15
        + [Seed(MessageStatus.expired, at(20), 3, "end_reached")] * 60,
    )
    reminder = await create_mailing(
        engine, start_at=at(9), end_at=at(30), text_="Your appointment is tomorrow at 10:00"
    )
    await add_messages(
        engine,
        reminder,
        [Seed(MessageStatus.sent, at(9 + i / 60), 1) for i in range(420)]
        + [Seed(MessageStatus.cancelled, at(11), 0)] * 30
        + [Seed(MessageStatus.scheduled)] * 120,
    )
    survey = await create_mailing(
        engine, start_at=at(6), end_at=at(22), text_="How did we do? Reply 1-5"
    )
    await add_messages(
        engine, survey, [Seed(MessageStatus.sent, at(7 + i / 30), 1) for i in range(260)]
    )
    # The day before, for the change column.
    await add_messages(
        engine, spring, [Seed(MessageStatus.sent, at(-20 + i / 100), 1) for i in range(1400)]
    )


def _png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


async def test_the_html_mail_renders_in_chromium(
    report_db: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    chromium = _chromium_or_skip()
    from playwright.async_api import async_playwright

    await _seed(report_db)
    async with sessionmaker() as session:
        report = await load_report(
            session,
            DAY,
            BERLIN,
            admin_url="https://herald.example.com/admin",
            now=datetime(2025, 3, 31, 6, 0, tzinfo=UTC),
        )
    html = render(report).html

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium))
        try:
            page = await browser.new_page(viewport={"width": WIDTH, "height": 900})
            await page.set_content(html)
            text = await page.inner_text("body")
            # The worst mailing's bar: its failed segment is drawn, wider than nothing.
            failed = page.locator('td[title^="failed:"]').first
            box = await failed.bounding_box()
            png = await page.screenshot(full_page=True)
        finally:
            await browser.close()

    assert "Sunday 30 March 2025" in text
    assert "1 mailing ended with unsent messages" in text
    assert "Spring sale: 30% off everything <today>" in text, "escaped, so shown as text"
    assert box is not None
    assert box["width"] > 1
    width, height = _png_size(png)
    assert width == WIDTH
    assert height > 600
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-email.png").write_bytes(png)
    README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
    if not README_IMAGE.exists() or README_IMAGE.read_bytes() != png:
        shutil.copyfile(ARTIFACTS / "report-email.png", README_IMAGE)
