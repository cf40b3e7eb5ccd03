"""``herald-probe-stub``: run the stub under uvicorn, set up by flags or HERALD_STUB_* variables."""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

import uvicorn

from herald_probe_stub.app import ProbeStub
from herald_probe_stub.config import (
    DEFAULT_TOKEN,
    OUTAGE_MODES,
    ConfigError,
    OutageWindow,
    StubConfig,
    non_negative,
    outage_span,
    probability,
)
from herald_probe_stub.protocol import CoalescingHttpToolsProtocol
from herald_probe_stub.record_file import RecordFile

ENV_PREFIX: Final = "HERALD_STUB_"
# Hanging requests are cancelled after this, so that SIGTERM stops the stub within ~2 s.
GRACEFUL_SHUTDOWN_SECONDS: Final = 1


def _checked(check: Callable[[str, object], float], field: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            return check(field, float(text))
        except ValueError as error:
            problem = error.problem if isinstance(error, ConfigError) else "must be a number"
            raise argparse.ArgumentTypeError(f"{problem}, got {text!r}") from None

    return parse


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number 0-65535, got {text!r}")
    return int(text)


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _outage(text: str) -> tuple[float, float]:
    start, separator, duration = text.partition(":")
    try:
        if not separator:
            raise ValueError
        return outage_span("outage", float(start), float(duration))
    except ConfigError as error:
        raise argparse.ArgumentTypeError(f"{error.problem}, got {text!r}") from None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be START:DURATION in seconds, e.g. 10:20, got {text!r}"
        ) from None


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """Flags whose defaults come from HERALD_STUB_<FLAG>; argparse checks both the same way."""

    def env(name: str, fallback: str | None) -> str | None:
        return environ.get(ENV_PREFIX + name.upper(), fallback)

    parser = argparse.ArgumentParser(
        prog="herald-probe-stub",
        description="Local stand-in of the external send API, with fault injection. "
        f"Every flag can also be set as {ENV_PREFIX}<FLAG>, e.g. {ENV_PREFIX}ERROR_RATE=0.1; "
        f"{ENV_PREFIX}OUTAGE takes several START:DURATION separated by commas.",
    )
    parser.add_argument("--host", default=env("host", "127.0.0.1"))
    parser.add_argument("--port", type=_port, default=env("port", "8090"))
    parser.add_argument(
        "--token",
        default=env("token", DEFAULT_TOKEN),
        help="bearer token the send endpoint requires; empty turns authentication off",
    )
    rates = {
        "error_rate": "a 500, 502 or 503",
        "malformed_rate": "a 200 whose body is not the API's schema",
        "hang_rate": "no answer for --hang-seconds",
        "reset_rate": "the connection closed without a complete answer",
    }
    parser.add_argument(
        "--latency-ms",
        type=_checked(non_negative, "latency_ms"),
        default=env("latency_ms", "0"),
        help="delay before every answer",
    )
    parser.add_argument(
        "--jitter-ms",
        type=_checked(non_negative, "jitter_ms"),
        default=env("jitter_ms", "0"),
        help="latency varies by up to this, uniformly",
    )
    parser.add_argument(
        "--load-latency-ms",
        type=_checked(non_negative, "load_latency_ms"),
        default=env("load_latency_ms", "0"),
        help="each other request in flight adds this to an answer's latency (slows with load)",
    )
    for name, meaning in rates.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=_checked(probability, name),
            default=env(name, "0"),
            help=f"probability of {meaning}",
        )
    parser.add_argument(
        "--hang-seconds",
        type=_checked(non_negative, "hang_seconds"),
        default=env("hang_seconds", "30"),
    )
    parser.add_argument(
        "--rate-limit",
        type=_checked(non_negative, "rate_limit"),
        default=env("rate_limit", "0"),
        help="requests per second before 429 (token bucket); 0 turns it off",
    )
    parser.add_argument(
        "--outage",
        type=_outage,
        action="append",
        metavar="START:DURATION",
        help="answer as --outage-mode from START to START+DURATION seconds "
        "after the stub starts; repeatable",
    )
    parser.add_argument(
        "--outage-mode",
        choices=OUTAGE_MODES,
        default=env("outage_mode", "503"),
        help="503: answer 503 at once; reset: drop the connection",
    )
    parser.add_argument(
        "--record",
        type=Path,
        default=env("record", None),
        help="append one NDJSON line per request to this file",
    )
    parser.add_argument(
        "--seed",
        type=_seed,
        default=env("seed", None),
        help="seed of the fault generator, to replay a run",
    )
    return parser


def parse_options(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, environ: Mapping[str, str]
) -> argparse.Namespace:
    options = parser.parse_args(argv)
    if options.outage is None:
        options.outage = []
        for text in re.split(r"[,\s]+", environ.get(ENV_PREFIX + "OUTAGE", "").strip()):
            if text:
                try:
                    options.outage.append(_outage(text))
                except argparse.ArgumentTypeError as error:
                    parser.error(f"{ENV_PREFIX}OUTAGE: {error}")
    # argparse checks a choice given as a flag, not one that came from the environment.
    if options.outage_mode not in OUTAGE_MODES:
        parser.error(
            f"{ENV_PREFIX}OUTAGE_MODE: must be one of {', '.join(OUTAGE_MODES)}, "
            f"got {options.outage_mode!r}"
        )
    return options


def config_from(options: argparse.Namespace, started_at: float) -> StubConfig:
    return StubConfig(
        token=options.token or None,
        latency_ms=options.latency_ms,
        jitter_ms=options.jitter_ms,
        load_latency_ms=options.load_latency_ms,
        error_rate=options.error_rate,
        malformed_rate=options.malformed_rate,
        hang_rate=options.hang_rate,
        hang_seconds=options.hang_seconds,
        reset_rate=options.reset_rate,
        rate_limit=options.rate_limit,
        outages=tuple(
            OutageWindow.after(started_at, start, duration) for start, duration in options.outage
        ),
        outage_mode=options.outage_mode,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser(os.environ)
    options = parse_options(parser, argv, os.environ)
    record_file = None
    if options.record is not None:
        try:
            record_file = RecordFile.open(options.record)
        except OSError as error:
            parser.error(f"--record: cannot open {options.record}: {error.strerror}")
    started_at = time.monotonic()
    config = config_from(options, started_at)
    app = ProbeStub(
        config, rng=random.Random(options.seed), record_file=record_file, started_at=started_at
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=options.host,
            port=options.port,
            loop="uvloop",
            # uvicorn's httptools protocol, writing an answer's head and body in one go.
            http=CoalescingHttpToolsProtocol,
            lifespan="on",
            # Per-request costs nobody needs here: an access log, X-Forwarded-* rewriting
            # (no proxy in front), a Server header.
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    )
    defaults = StubConfig().to_json(started_at)
    faults = {
        name: value
        for name, value in config.to_json(started_at).items()
        if name != "token" and value != defaults[name]
    }
    # uvicorn has configured its loggers by now; the token is never logged.
    logging.getLogger("uvicorn.error").info(
        "probe_stub.starting auth=%s faults=%s record=%s",
        "on" if config.token else "off",
        faults,
        options.record,
    )
    server.run()
