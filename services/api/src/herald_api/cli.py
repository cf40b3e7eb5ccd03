"""``herald``: the admin CLI (migrate, api-key create/list/revoke, run, report, dead-letters).

Each subcommand registers itself in ``COMMANDS`` (name -> function that adds its
parser), so another module can add one with ``COMMANDS["name"] = add_parser``.
When PostgreSQL (or, for dead-letters, RabbitMQ) cannot be reached, every command
prints one line on stderr saying so and how to start it, and exits 2.
"""

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from herald_api.auth import service as auth_service
from herald_api.settings import ApiSettings
from herald_common.db.engine import create_engine, create_sessionmaker

EXIT_UNREACHABLE = 2
START_POSTGRESQL = "pg_ctlcluster --skip-systemctl-redirect 15 main start"

Handler = Callable[[argparse.Namespace, ApiSettings], int]
AddParser = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _add_migrate(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser(
        "migrate", help="create the database if missing, then apply every migration"
    )
    parser.set_defaults(handler=_migrate)


def _migrate(_args: argparse.Namespace, settings: ApiSettings) -> int:
    # Imported here: alembic is slow to import and only this command needs it.
    from herald_common.db import migrate

    created = migrate.create_database_if_missing(settings.database_url)
    migrate.upgrade(settings.database_url)
    database = make_url(settings.database_url).database
    print(
        f"herald: database {database} {'created and ' if created else ''}migrated", file=sys.stderr
    )
    return 0


def _add_api_key(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser("api-key", help="create, list or revoke API keys")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print it (alone) on stdout")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.set_defaults(handler=_run(_create_key))
    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    listing.set_defaults(handler=_run(_list_keys))
    revoke = actions.add_parser("revoke", help="revoke a key by id; it stops working at once")
    revoke.add_argument("id", type=int, help="the key's id, as `herald api-key list` shows")
    revoke.set_defaults(handler=_run(_revoke_key))


def _add_run(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    # Imported only when the parser is built: run pulls in the broker client.
    from herald_api import run

    run.add_parser(commands)


def _add_dead_letters(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    # Imported only when the parser is built, like run: it pulls in the broker client.
    from herald_api import dead_letters

    dead_letters.add_parser(commands)


def _add_report(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    # Everything after `report` is the reporter's (its own --help included): a prefix
    # character no option uses makes argparse take "--date", "-h" and the rest as values.
    parser = commands.add_parser(
        "report",
        help="send or preview the daily statistics email (herald-reporter send|preview|run)",
        add_help=False,
        prefix_chars="+",
    )
    parser.add_argument("arguments", nargs=argparse.REMAINDER)
    parser.set_defaults(handler=_forward_to_reporter)


def _forward_to_reporter(args: argparse.Namespace, _settings: ApiSettings) -> int:
    # A service never imports another: the reporter's own script, from this same
    # environment (never one found on PATH), replaces this process.
    reporter = Path(sys.executable).parent / "herald-reporter"
    if reporter.is_file():
        os.execv(reporter, [str(reporter), *args.arguments])  # noqa: S606 - our script, no shell
    print(f"herald: the reporter is not installed here ({reporter} is missing)", file=sys.stderr)
    return 1


COMMANDS: dict[str, AddParser] = {
    "migrate": _add_migrate,
    "api-key": _add_api_key,
    "run": _add_run,
    "report": _add_report,
    "dead-letters": _add_dead_letters,
}


def _run(
    command: Callable[[argparse.Namespace, ApiSettings], Coroutine[Any, Any, int]],
) -> Handler:
    def handler(args: argparse.Namespace, settings: ApiSettings) -> int:
        return asyncio.run(command(args, settings))

    return handler


async def _create_key(args: argparse.Namespace, settings: ApiSettings) -> int:
    name = str(args.name).strip()
    if not 1 <= len(name) <= 100:
        print("herald: --name must be 1 to 100 characters", file=sys.stderr)
        return 1
    engine = create_engine(settings, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            row, key = await auth_service.create(session, name)
    finally:
        await engine.dispose()
    print(key)
    print(f"herald: created API key {row.id} ({row.name}); it is shown only once", file=sys.stderr)
    return 0


async def _list_keys(_args: argparse.Namespace, settings: ApiSettings) -> int:
    engine = create_engine(settings, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await auth_service.list_keys(session)
    finally:
        await engine.dispose()
    print(f"{'ID':>6}  {'NAME':<30}  {'PREFIX':<10}  {'CREATED':<25}  REVOKED")
    for row in rows:
        created = row.created_at.isoformat(timespec="seconds")
        revoked = row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else "-"
        print(f"{row.id:>6}  {row.name:<30}  {row.prefix:<10}  {created:<25}  {revoked}")
    return 0


async def _revoke_key(args: argparse.Namespace, settings: ApiSettings) -> int:
    engine = create_engine(settings, pool_size=1)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            row = await auth_service.revoke(session, args.id)
    finally:
        await engine.dispose()
    if row is None:
        print(f"herald: no API key with id {args.id}", file=sys.stderr)
        return 1
    print(f"herald: API key {row.id} ({row.name}) is revoked", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="herald", description="herald's admin commands")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in COMMANDS.values():
        add_parser(commands)
    return parser


def _unreachable_message(exc: DBAPIError, settings: ApiSettings) -> str:
    url = make_url(settings.database_url)
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    if "does not exist" in detail:
        return f"herald: database {url.database} does not exist at {where}: run `herald migrate`"
    return (
        f"herald: cannot reach PostgreSQL at {where} ({detail}); start it with"
        f" `{START_POSTGRESQL}`, or set HERALD_DATABASE_URL"
    )


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = ApiSettings()
    handler: Handler = args.handler
    try:
        code = handler(args, settings)
    except OperationalError as exc:
        print(_unreachable_message(exc, settings), file=sys.stderr)
        code = EXIT_UNREACHABLE
    except ProgrammingError as exc:
        if "does not exist" not in str(exc.orig):
            raise
        print("herald: the database has no schema yet: run `herald migrate`", file=sys.stderr)
        code = EXIT_UNREACHABLE
    sys.exit(code)


if __name__ == "__main__":
    main()
