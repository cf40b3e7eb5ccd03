"""The fault suite (``make test-faults``): collects one line of counts per fault and
prints them as a table at the end of the run."""

from typing import Any

import pytest

from tests.e2e.conftest import pytest_runtest_makereport, start_system

__all__ = ["pytest_runtest_makereport", "start_system"]

REPORT: list[dict[str, Any]] = []
COLUMNS = (
    "fault",
    "messages",
    "sent",
    "duplicates",
    "in_flight_duplicates",
    "late_sends",
    "outside_window",
)


@pytest.fixture
def fault_report() -> list[dict[str, Any]]:
    return REPORT


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not REPORT:
        return
    terminalreporter.section("faults")
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in REPORT)) for c in COLUMNS]
    terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in REPORT:
        terminalreporter.write_line(
            "  ".join(str(row.get(c, "")).ljust(w) for c, w in zip(COLUMNS, widths, strict=True))
        )
