"""``python -m bench`` (``make bench``): run the selected runs, print the table, write JSON.

Results go to ``bench/results/bench-<UTC time>.json`` (git-ignored); the newest earlier
file there is the "previous" run the table compares with.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine, runs
from bench.report import render
from bench.targets import HEADLINE_LATENCY_MS, HEADLINE_SENDERS, judge_all

RUNS = ("import", "materialise", "dispatch", "latency", "faults", "ratelimit", "stub")
RESULTS_DIR = Path(__file__).parent / "results"
DEFAULT_DATABASE_URL = os.environ.get(
    "HERALD_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DEFAULT_AMQP_URL = os.environ.get("HERALD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
# The stub's latency in the runs "with latency": 50 ms ± 10 ms.
JITTER_MS = {0.0: 0.0, HEADLINE_LATENCY_MS: 10.0}
FAULTS = ("--error-rate", "0.2", "--hang-rate", "0.02")
# HERALD_PROBE_RATE_LIMIT of the rate-limit runs, besides the unlimited one: far above the
# 4,000-5,000 messages/s two senders reach here (the cost of leasing slots alone), and
# well below (the limit must hold).
RATE_LIMITS = [20_000.0, 1_000.0]


def _numbers(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list, got {text!r}"
            ) from None

    return parse


def _assignment(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _runs(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(RUNS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown run(s) {unknown}; choose from {', '.join(RUNS)}")
    return chosen


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run herald as processes on fresh databases and vhosts and measure it.",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=100_000,
        help="clients imported and materialised (default 100000; 1000000 for the 1M targets)",
    )
    parser.add_argument(
        "--only",
        type=_runs,
        default=list(RUNS),
        help=f"comma-separated runs to do, of {', '.join(RUNS)} (default: all)",
    )
    parser.add_argument(
        "--senders",
        type=_numbers(int),
        default=[1, 2, 4],
        help="sender counts of the dispatch runs (default 1,2,4)",
    )
    parser.add_argument(
        "--latencies",
        type=_numbers(float),
        default=[0.0, HEADLINE_LATENCY_MS],
        help="stub latencies in ms of the dispatch runs; 50 gets ±10 ms jitter (default 0,50)",
    )
    parser.add_argument(
        "--dispatch-size",
        type=int,
        default=None,
        help="messages of the headline dispatch (50 ms, 2 senders); default min(size, 100000)",
    )
    parser.add_argument(
        "--sweep-size",
        type=int,
        default=10_000,
        help="messages of the other dispatch runs (default 10000)",
    )
    parser.add_argument(
        "--faults-size", type=int, default=10_000, help="messages of the faults run (default 10000)"
    )
    parser.add_argument(
        "--rate-limits",
        type=_numbers(float),
        default=RATE_LIMITS,
        help="HERALD_PROBE_RATE_LIMIT values of the ratelimit runs, each run beside one without"
        " a limit (default 20000,1000: above the rate reached, and binding)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="SECONDS",
        help="py-spy the scheduler, a sender and the api for SECONDS during the headline dispatch",
    )
    parser.add_argument(
        "--env",
        action="append",
        type=_assignment,
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for every herald process (repeatable), e.g. "
        "HERALD_SEND_BATCH_SIZE=500: to measure a setting",
    )
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="run the scheduler and senders on uvloop's event loop (an experiment)",
    )
    parser.add_argument(
        "--sender-nice",
        type=int,
        default=0,
        metavar="N",
        help="start the senders with nice N, below the api (an experiment)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    return parser


def plans(options: argparse.Namespace) -> list[runs.DispatchPlan]:
    """The dispatch runs: every (latency, senders); the headline one at full size, under load."""
    headline_size = options.dispatch_size or min(options.size, 100_000)
    selected = []
    for latency in options.latencies:
        jitter = JITTER_MS.get(latency, 0.0)
        for senders in options.senders:
            is_headline = latency == HEADLINE_LATENCY_MS and senders == HEADLINE_SENDERS
            size = headline_size if is_headline else options.sweep_size
            selected.append(
                runs.DispatchPlan(
                    name=f"dispatch-{latency:g}ms-{senders}s-{size}",
                    size=size,
                    senders=senders,
                    latency_ms=latency,
                    jitter_ms=jitter,
                    api_load=is_headline,
                    profile_seconds=options.profile if is_headline else 0,
                    timeout=_timeout(size),
                )
            )
    return selected


def rate_limit_plans(options: argparse.Namespace) -> list[runs.DispatchPlan]:
    """The 50 ms, 2-sender dispatch without a limit, then with each of ``--rate-limits``."""
    size = options.sweep_size
    limits: list[float] = [0.0, *(limit for limit in options.rate_limits if limit > 0)]
    return [
        runs.DispatchPlan(
            name=f"ratelimit-{f'{limit:g}' if limit else 'off'}-"
            f"{HEADLINE_LATENCY_MS:g}ms-{HEADLINE_SENDERS}s-{size}",
            size=size,
            senders=HEADLINE_SENDERS,
            latency_ms=HEADLINE_LATENCY_MS,
            jitter_ms=JITTER_MS[HEADLINE_LATENCY_MS],
            rate_limit=limit,
            # A binding limit stretches the run to size / limit seconds.
            timeout=_timeout(size) + (size / limit if limit else 0.0),
        )
        for limit in limits
    ]


def _timeout(size: int) -> float:
    """Long enough for a slow run to finish, bounded so that a stuck one ends."""
    return min(1800.0, 120.0 + size / 100)


def _commit() -> str:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return result.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    # Uncommitted changes to the services are named by a hash of their diff, so that two
    # runs of the same working tree can be told from runs of different ones.
    diff = git("diff", "HEAD", "--", "services", "libs")
    if not diff:
        return commit
    return f"{commit}+{hashlib.sha256(diff.encode()).hexdigest()[:8]}"


def previous_results(results_dir: Path, size: int) -> dict[str, Any] | None:
    """The newest earlier results of the same ``--size``, else the newest of any."""
    documents = []
    for path in sorted(results_dir.glob("bench-*.json")):
        try:
            document: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # an interrupted run's file
        document["meta"]["file"] = str(path)
        documents.append(document)
    same_size = [d for d in documents if d["meta"].get("size") == size]
    chosen = same_size or documents
    return chosen[-1] if chosen else None


def run_all(options: argparse.Namespace, servers: runs.Servers) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []

    def done(result: dict[str, Any]) -> None:
        results.append(result)
        print(f"  done: {result['name']}", file=sys.stderr, flush=True)

    chosen = set(options.only)
    if "stub" in chosen:
        # First, on an idle machine: it measures the instrument, not herald.
        done(runs.stub_capacity(servers))
    if "import" in chosen:
        for result in runs.ingest(servers, options.size, materialise="materialise" in chosen):
            done(result)
    elif "materialise" in chosen:
        done(runs.materialise_only(servers, options.size))
    if "latency" in chosen:
        done(runs.latency(servers))
    if "dispatch" in chosen:
        for plan in plans(options):
            print(f"  running {plan.name} ...", file=sys.stderr, flush=True)
            done(runs.dispatch(servers, plan))
    if "faults" in chosen:
        size = options.faults_size
        done(
            runs.dispatch(
                servers,
                runs.DispatchPlan(
                    name=f"faults-{HEADLINE_LATENCY_MS:g}ms-{HEADLINE_SENDERS}s-{size}",
                    size=size,
                    senders=HEADLINE_SENDERS,
                    latency_ms=HEADLINE_LATENCY_MS,
                    jitter_ms=JITTER_MS[HEADLINE_LATENCY_MS],
                    stub_faults=FAULTS,
                    timeout=_timeout(size) + 300,
                ),
            )
        )
    if "ratelimit" in chosen:
        limited = []
        for plan in rate_limit_plans(options):
            print(f"  running {plan.name} ...", file=sys.stderr, flush=True)
            limited.append(runs.dispatch(servers, plan))
            done(limited[-1])
        runs.compare_rate_limits(limited)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    options = build_parser().parse_args(argv)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    results_dir: Path = options.results_dir
    previous = previous_results(results_dir, options.size)
    servers = runs.Servers(
        options.database_url,
        options.amqp_url,
        results_dir / stamp,
        env=tuple(options.env),
        uvloop=options.uvloop,
        sender_nice=options.sender_nice,
    )
    print(f"herald benchmark: {', '.join(options.only)}; logs: {servers.out_dir}", file=sys.stderr)
    clock = time.monotonic()
    results = run_all(options, servers)
    document: dict[str, Any] = {
        "meta": {
            "started_at": started.isoformat(timespec="seconds"),
            "seconds": round(time.monotonic() - clock, 1),
            "size": options.size,
            "argv": list(argv if argv is not None else sys.argv[1:]),
            "commit": _commit(),
            "experiments": {
                "env": dict(options.env),
                "uvloop": options.uvloop,
                "sender_nice": options.sender_nice,
            },
            "load_average_at_start": machine.load_average(),
            "machine": machine.describe(),
        },
        "runs": results,
        "targets": judge_all(results),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"bench-{stamp}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    document["meta"]["file"] = str(path)
    print(render(document, previous))
    print(f"\nresults: {path}")
