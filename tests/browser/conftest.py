"""Debian's Chromium, driven by Playwright, for the browser tests.

Playwright never downloads a browser here: it drives the system's `chromium` (the
package `.ci/run` installs). Without it the tests skip and say why, except under
CI=true, where a missing browser is a failure: CI must not go green without them.
"""

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def chromium_path() -> str | None:
    """The system Chromium, or None; HERALD_TEST_CHROMIUM overrides the lookup."""
    return os.environ.get("HERALD_TEST_CHROMIUM") or shutil.which("chromium")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    if executable is None:
        reason = "Chromium is not installed (apt-get install chromium); browser tests need it"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def screenshots() -> Path:
    """Where tests save what the pages look like (git-ignored test artifacts)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
