"""``herald-mail-sink``: a local SMTP server that stores every mail it is given as a .eml file.

For development (``herald run``) and tests: it accepts any sender and recipient, writes
each message atomically (a temporary name, then a rename) to ``--dir`` and prints the
path. It needs aiosmtpd, a development dependency, imported only when the sink starts.
"""

import argparse
import asyncio
import itertools
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiosmtpd.smtp import SMTP as SMTPProtocol
    from aiosmtpd.smtp import Envelope, Session

PROG = "herald-mail-sink"


class MailFolder:
    """aiosmtpd handler: each message's DATA becomes ``<utc time>-<n>.eml`` in ``folder``."""

    def __init__(self, folder: Path, *, announce: bool = True) -> None:
        self.folder = folder
        self.stored: list[Path] = []
        self._announce = announce
        self._numbers = itertools.count(1)
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(  # aiosmtpd's hook name
        self, server: "SMTPProtocol", session: "Session", envelope: "Envelope"
    ) -> str:
        content = envelope.original_content or b""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.folder / f"{stamp}-{os.getpid()}-{next(self._numbers)}.eml"
        partial = path.with_suffix(".eml.part")
        partial.write_bytes(content)
        partial.replace(path)
        self.stored.append(path)
        if self._announce:
            recipients = ", ".join(envelope.rcpt_tos)
            print(f"{PROG}: stored {path} (from {envelope.mail_from} to {recipients})", flush=True)
        return "250 Message accepted for delivery"


async def serve(host: str, port: int, folder: Path) -> None:
    try:
        from aiosmtpd.smtp import SMTP
    except ImportError:  # pragma: no cover - a production install without dev dependencies
        raise SystemExit(f"{PROG}: needs aiosmtpd, a development dependency (`uv sync`)") from None
    handler = MailFolder(folder)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="herald-mail-sink"), host, port
    )
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    print(f"{PROG}: listening on {host}:{port}, storing mail in {folder}", flush=True)
    try:
        await stopping.wait()
    finally:
        server.close()
        await server.wait_closed()
    print(f"{PROG}: stopped; {len(handler.stored)} mail(s) stored in {folder}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="a local SMTP server that stores every mail as a .eml file"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument("--port", type=int, default=8025, help="port to listen on (%(default)s)")
    parser.add_argument(
        "--dir", type=Path, default=Path("var/mail"), help="folder for the .eml files (%(default)s)"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    folder: Path = args.dir.resolve()
    try:
        asyncio.run(serve(args.host, args.port, folder))
    except OSError as error:
        print(
            f"{PROG}: cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
