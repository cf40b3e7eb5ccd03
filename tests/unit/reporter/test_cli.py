"""``herald-reporter``'s argument parsing: strict dates, every subcommand's help."""

import argparse
from datetime import date

import pytest

from herald_reporter.cli import build_parser, main, report_date


def test_dates_are_iso_calendar_days_only() -> None:
    assert report_date("2025-03-30") == date(2025, 3, 30)
    for bad in ("2025-3-30", "30.03.2025", "20250330", "2025-03-30T00:00", "yesterday"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a date as YYYY-MM-DD"):
            report_date(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="is no such day"):
        report_date("2025-02-29")


def test_send_and_preview_need_a_date() -> None:
    parser = build_parser()
    args = parser.parse_args(["send", "--date", "2025-03-30", "--force"])
    assert (args.date, args.force) == (date(2025, 3, 30), True)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["preview"])
    assert exit_.value.code == 2


@pytest.mark.parametrize("command", ["run", "send", "preview"])
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: herald-reporter {command}" in capsys.readouterr().out
