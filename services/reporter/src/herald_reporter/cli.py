"""``herald-reporter`` (and ``herald report``, which forwards here): run, send, preview.

- ``run``: the service (see :mod:`herald_reporter.main`).
- ``send --date YYYY-MM-DD [--force]``: send one day's report now, through the same
  claim as the service, so it is safe next to it; ``--force`` sends a settled day again.
- ``preview --date YYYY-MM-DD [--html FILE] [--text FILE]``: render a report without
  sending or claiming anything; a part given no file goes to stdout.

Exit codes: 0 done; 1 not sent (claimed elsewhere, settled, or the SMTP server failed);
2 bad usage or configuration, or PostgreSQL unreachable or not migrated.
"""

import argparse
import asyncio
import re
import sys
from collections.abc import Callable, Coroutine
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from herald_common.db.engine import create_engine, create_sessionmaker
from herald_common.logging import configure_logging
from herald_reporter.rendering import render
from herald_reporter.report import load_report
from herald_reporter.schedule import local_date, report_day
from herald_reporter.service import SERVICE, Outcome, Reporter, SendResult, utc_now
from herald_reporter.settings import ReporterSettings

PROG = "herald-reporter"
EXIT_NOT_SENT = 1
EXIT_USAGE = 2
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

Handler = Callable[[argparse.Namespace, ReporterSettings], int]


def report_date(value: str) -> date:
    """argparse type of ``--date``: an ISO calendar date, nothing looser."""
    if not _DATE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a date as YYYY-MM-DD, e.g. 2025-03-30")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is no such day") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="herald's daily statistics email: run the service, send, preview"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", help="run the service: send each day's report at HERALD_REPORT_TIME"
    )
    run.set_defaults(handler=_run)

    send = commands.add_parser(
        "send", help="send one day's report now (the same claim as the service)"
    )
    send.add_argument(
        "--date",
        required=True,
        type=report_date,
        metavar="YYYY-MM-DD",
        help="the day, in HERALD_REPORT_TIMEZONE",
    )
    send.add_argument(
        "--force",
        action="store_true",
        help="send even if the day's report was sent or rejected already (not while another "
        "replica is sending it)",
    )
    send.set_defaults(handler=_async(_send))

    preview = commands.add_parser(
        "preview",
        help="render a day's report without sending it; parts without a file go "
        "to stdout (text first)",
    )
    preview.add_argument(
        "--date",
        required=True,
        type=report_date,
        metavar="YYYY-MM-DD",
        help="the day, in HERALD_REPORT_TIMEZONE",
    )
    preview.add_argument("--html", type=Path, metavar="FILE", help="write the HTML part here")
    preview.add_argument("--text", type=Path, metavar="FILE", help="write the text part here")
    preview.set_defaults(handler=_async(_preview))
    return parser


def _async(
    command: Callable[[argparse.Namespace, ReporterSettings], Coroutine[Any, Any, int]],
) -> Handler:
    def handler(args: argparse.Namespace, settings: ReporterSettings) -> int:
        configure_logging(SERVICE, level=settings.log_level, fmt=settings.log_format)
        return asyncio.run(command(args, settings))

    return handler


def _run(_args: argparse.Namespace, settings: ReporterSettings) -> int:
    if not settings.report_recipients:
        return _fail("HERALD_REPORT_RECIPIENTS is empty: set the addresses to mail the report to")
    from herald_reporter import main  # uvloop and the metrics server: only `run` needs them

    return main.run(settings)


async def _send(args: argparse.Namespace, settings: ReporterSettings) -> int:
    day: date = args.date
    zone = settings.zone
    if not settings.report_recipients:
        return _fail("HERALD_REPORT_RECIPIENTS is empty: set the addresses to mail the report to")
    now = utc_now()
    end = report_day(day, zone).end
    if now < end:
        return _fail(
            f"{day} is not over yet in {zone.key}: it ends at {_local(end, settings)};"
            " `preview` shows its figures so far"
        )
    engine = create_engine(settings, pool_size=1)
    try:
        result = await Reporter(settings, create_sessionmaker(engine)).send(day, force=args.force)
    finally:
        await engine.dispose()
    return _report_outcome(result, settings)


def _report_outcome(result: SendResult, settings: ReporterSettings) -> int:
    day = result.day
    if result.outcome is Outcome.sent:
        to = ", ".join(settings.report_recipients)
        _say(f"the report for {day} was sent to {to} (Message-ID {result.message_id})")
        if result.detail:
            _say(f"some recipients were refused: {result.detail}")
        return 0
    if result.outcome is Outcome.rejected:
        return _fail(
            f"the SMTP server rejected the report for {day}: {result.detail}", EXIT_NOT_SENT
        )
    if result.outcome is Outcome.deferred:
        when = _local(result.retry_at, settings) if result.retry_at else "later"
        return _fail(
            f"the report for {day} could not be sent: {result.detail}; the service tries"
            f" again from {when}",
            EXIT_NOT_SENT,
        )
    claim = result.claim
    if claim is None:  # pragma: no cover - a failed claim means a row exists
        return _fail(f"the report for {day} is claimed elsewhere", EXIT_NOT_SENT)
    if claim.state == "sent":
        sent = _local(claim.sent_at, settings) if claim.sent_at else "?"
        reason = (
            f"was sent already at {sent} (Message-ID {claim.message_id}); --force sends it again"
        )
    elif claim.state == "rejected":
        reason = f"was rejected by the SMTP server: {claim.last_error}; --force tries again"
    elif claim.state == "deferred":
        reason = (
            f"waits for the SMTP server until {_local(claim.lease_until, settings)} after:"
            f" {claim.last_error}; --force tries now"
        )
    else:
        reason = (
            f"is being sent by {claim.holder} (its lease runs until"
            f" {_local(claim.lease_until, settings)}); try again after that"
        )
    return _fail(f"not sent: the report for {day} {reason}", EXIT_NOT_SENT)


async def _preview(args: argparse.Namespace, settings: ReporterSettings) -> int:
    day: date = args.date
    zone = settings.zone
    now = utc_now()
    today = local_date(now, zone)
    if day > today:
        return _fail(f"{day} is in the future in {zone.key} (today is {today})")
    engine = create_engine(settings, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            report = await load_report(session, day, zone, admin_url=settings.admin_url, now=now)
    finally:
        await engine.dispose()
    if day == today:
        _say(f"{day} is not over yet: these are its figures so far")
    rendered = render(report)
    for part, target in (("text", args.text), ("html", args.html)):
        content = rendered.text if part == "text" else rendered.html
        if target is None:
            sys.stdout.write(content)
        else:
            target.write_text(content, encoding="utf-8")
            _say(f"wrote the {part} part to {target}")
    sys.stdout.flush()
    return 0


def _local(instant: datetime | None, settings: ReporterSettings) -> str:
    if instant is None:
        return "?"
    return instant.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M %Z")


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    _say(message)
    return code


def _database_problem(error: DBAPIError, settings: ReporterSettings) -> str:
    url = make_url(settings.database_url)
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    detail = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
    if isinstance(error, ProgrammingError):
        return f"the database {url.database} has no report tables yet: run `herald migrate`"
    if "does not exist" in detail:
        return f"database {url.database} does not exist at {where}: run `herald migrate`"
    return f"cannot reach PostgreSQL at {where} ({detail}); start it, or set HERALD_DATABASE_URL"


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = ReporterSettings()
    except ValidationError as error:
        problems = "; ".join(
            f"HERALD_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" if e["loc"] else e["msg"]
            for e in error.errors()
        )
        sys.exit(_fail(f"invalid settings: {problems}"))
    handler: Handler = args.handler
    try:
        code = handler(args, settings)
    except (OperationalError, ProgrammingError) as error:
        if isinstance(error, ProgrammingError) and "does not exist" not in str(error.orig):
            raise
        code = _fail(_database_problem(error, settings))
    sys.exit(code)


if __name__ == "__main__":
    main()
