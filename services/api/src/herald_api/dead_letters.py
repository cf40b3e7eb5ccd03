"""``herald dead-letters list|replay``: herald.dead at an operator's command line.

What is read and how a replay keeps every letter is herald_common.broker.dead_letters;
this module parses the command and prints the outcome, for people or (``--json``) tools.
"""

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import (
    AMQPError,
    ChannelInvalidStateError,
    ProbableAuthenticationError,
    ProtocolSyntaxError,
)

from herald_api.settings import ApiSettings
from herald_common.broker import dead_letters
from herald_common.broker.dead_letters import DeadLetter, Listing, ReplayResult
from herald_common.broker.topology import DEAD_LETTER_QUEUE

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2  # also: the broker unreachable, as every herald command
CONNECT_TIMEOUT = 5.0
START_RABBITMQ = "rabbitmq-server -detached"

REPLAY_HELP = """\
Publishes each selected dead letter again to the exchange and routing key it died from
(its x-death header's latest entry), waits for the broker's confirm, and only then
removes it from herald.dead. A crash or a failed publish loses nothing: at worst a
letter is both replayed and still in herald.dead, and a later replay sends it again.

Replaying is safe for every herald message. A send command makes a sender send only
those of its rows that still carry the command's dispatch token: replayed within its
lease (HERALD_DISPATCH_LEASE, 300 s) it sends what is still unsent; later, its rows
have been dispatched again under another token, and the stale copy sends nothing.
Domain events carry ids, not state, and status events only move a message forward.

Exit status: 0 when every selected letter was replayed (or, with --dry-run, would
be), 1 when some were left in herald.dead (each is printed with the reason), 2 for
an unknown message id or an unreachable broker.
"""


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser(
        "dead-letters",
        help=f"list or replay what consumers rejected into {DEAD_LETTER_QUEUE}",
        description=f"Inspect and replay {DEAD_LETTER_QUEUE}, where herald's consumers park"
        " messages they cannot handle (unreadable, or a bug met handling them).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list",
        help="show dead letters, leaving them in place",
        description=f"Show the first dead letters of {DEAD_LETTER_QUEUE}: where each died"
        " and why (its x-death header), its type, ids, and the start of its body. They are"
        " read without being acked and handed back, so they stay (a quorum queue may move"
        " them behind the rest).",
    )
    listing.add_argument(
        "--limit", type=_positive, default=50, metavar="N", help="show at most N (default 50)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON document on stdout")
    listing.set_defaults(handler=_handler(_list))
    replay = actions.add_parser(
        "replay",
        help="move dead letters back to where they came from",
        description=REPLAY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every letter in herald.dead now")
    which.add_argument(
        "--message-id",
        dest="message_ids",
        action="extend",
        nargs="+",
        metavar="ID",
        help="the letters with these message ids (as `list` shows them); repeatable",
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="say what would be replayed; change nothing"
    )
    replay.add_argument("--json", action="store_true", help="one JSON document on stdout")
    replay.set_defaults(handler=_handler(_replay))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


Command = Callable[[argparse.Namespace, AbstractConnection], Awaitable[int]]


def _handler(command: Command) -> Callable[[argparse.Namespace, ApiSettings], int]:
    def handler(args: argparse.Namespace, settings: ApiSettings) -> int:
        return asyncio.run(_with_broker(command, args, settings.amqp_url))

    return handler


async def _with_broker(command: Command, args: argparse.Namespace, amqp_url: str) -> int:
    # aiormq logs a failed connection attempt itself; this command says it in one line.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    try:
        connection = await aio_pika.connect(amqp_url, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, AMQPError) as error:
        _say(unreachable_message(amqp_url, error))
        return EXIT_BAD_INPUT
    try:
        async with connection:
            return await command(args, connection)
    except dead_letters.MissingQueue:
        _say(
            f"there is no queue {DEAD_LETTER_QUEUE} in vhost {_vhost(amqp_url)}: no herald"
            " service has started on this broker yet (or HERALD_AMQP_URL names another vhost)"
        )
        return EXIT_BAD_INPUT
    except (AMQPError, ChannelInvalidStateError, ConnectionError, TimeoutError) as error:
        _say(
            f"RabbitMQ failed during the command ({type(error).__name__}: {error}); every"
            f" letter not reported replayed is still in {DEAD_LETTER_QUEUE}"
        )
        return EXIT_FAILED


def unreachable_message(amqp_url: str, error: BaseException) -> str:
    """One line: where, why, and what to do; never the password."""
    parts = urlsplit(amqp_url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5672}"
    user = unquote(parts.username or "guest")
    if isinstance(error, ProbableAuthenticationError):
        return f"RabbitMQ at {where} refused user {user}'s login: check HERALD_AMQP_URL"
    if isinstance(error, ProtocolSyntaxError):
        # The broker closed the connection instead of opening the vhost.
        return (
            f"RabbitMQ at {where} would not open vhost {_vhost(amqp_url)} for user {user}"
            " (no such vhost, or no access to it): check HERALD_AMQP_URL"
        )
    return (
        f"cannot reach RabbitMQ at {where} ({_reason(error)}); start it with"
        f" `{START_RABBITMQ}`, or set HERALD_AMQP_URL"
    )


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    code = error.args[0] if error.args else None
    if isinstance(code, int) and code > 0:
        return os.strerror(code)  # aiormq wraps the socket's errno: "Connection refused"
    return type(error).__name__


def _vhost(amqp_url: str) -> str:
    path = urlsplit(amqp_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


async def _list(args: argparse.Namespace, connection: AbstractConnection) -> int:
    listing = await dead_letters.peek(connection, args.limit)
    if args.json:
        print(json.dumps(listing_json(listing), indent=2))
    else:
        for line in listing_lines(listing.letters):
            print(line)
    shown = len(listing.letters)
    _say(
        f"{DEAD_LETTER_QUEUE} holds {listing.depth} dead letter{'s' * (listing.depth != 1)};"
        f" showed {shown}{', all left in place' if shown else ''}"
    )
    return 0


async def _replay(args: argparse.Namespace, connection: AbstractConnection) -> int:
    try:
        result = await dead_letters.replay(
            connection,
            message_ids=None if args.all else args.message_ids,
            dry_run=args.dry_run,
        )
    except dead_letters.UnknownMessageIds as error:
        _say(
            f"{DEAD_LETTER_QUEUE} holds no dead letter with message id {', '.join(error.ids)}"
            " (see `herald dead-letters list`); nothing was replayed"
        )
        return EXIT_BAD_INPUT
    if args.json:
        print(json.dumps(replay_json(result), indent=2))
    else:
        for line in replay_lines(result):
            print(line)
    _say(replay_summary(result))
    return EXIT_FAILED if result.left else 0


def listing_json(listing: Listing) -> dict[str, Any]:
    return {
        "depth": listing.depth,
        "dead_letters": [letter.as_json() for letter in listing.letters],
    }


def listing_lines(letters: Sequence[DeadLetter]) -> list[str]:
    """Three lines per letter: what it is; where and when it died; its body's start."""
    lines = []
    for number, letter in enumerate(letters, 1):
        lines.append(
            f"{number}. {letter.type or '(no type)'}  message {letter.message_id or '-'}"
            f"  correlation {letter.correlation_id or '-'}"
        )
        lines.append(f"   {_origin(letter)}")
        lines.append(f"   body: {letter.excerpt}")
    return lines


def _origin(letter: DeadLetter) -> str:
    death = letter.death
    if death is None:
        return "no x-death header: published to herald.dead directly; its origin is unknown"
    when = death.time.isoformat() if death.time else "at an unknown time"
    times = f", {death.count} times" if death.count > 1 else ""
    return f"died {when} in {death.queue} ({death.reason}{times}); came from {_route(letter)}"


def _route(letter: DeadLetter) -> str:
    death = letter.death
    if death is None:
        return "-"
    keys = ", ".join(death.routing_keys) or "(none)"
    return f"exchange {death.exchange or '(default)'}, routing key {keys}"


def replay_lines(result: ReplayResult) -> list[str]:
    verb = "would replay" if result.dry_run else "replayed"
    lines = [
        f"{verb}  {letter.message_id or '-'}  {letter.type or '(no type)'}  -> {_route(letter)}"
        for letter in result.replayed
    ]
    lines += [
        f"left  {letter.message_id or '-'}  {letter.type or '(no type)'}: {reason}"
        for letter, reason in result.left
    ]
    return lines


def replay_json(result: ReplayResult) -> dict[str, Any]:
    return {
        "dry_run": result.dry_run,
        "depth": result.depth,
        "replayed": [letter.as_json() for letter in result.replayed],
        "left": [{**letter.as_json(), "why": reason} for letter, reason in result.left],
    }


def replay_summary(result: ReplayResult) -> str:
    held = f"{DEAD_LETTER_QUEUE} held {result.depth}"
    if result.dry_run:
        return (
            f"dry run: would replay {len(result.replayed)}, would leave {len(result.left)}"
            f" ({held}); nothing changed"
        )
    left = f"; {len(result.left)} left in {DEAD_LETTER_QUEUE}" if result.left else ""
    return f"replayed {len(result.replayed)} ({held}){left}"


def _say(text: str) -> None:
    print(f"herald: {text}", file=sys.stderr)
