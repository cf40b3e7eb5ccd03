"""The benchmark's own arithmetic: percentiles, the stub's steady rate, /proc readings,
profile summaries, the runs chosen from the command line and when the stub run measures."""

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bench import machine
from bench.cli import build_parser, plans, previous_results
from bench.profiling import module_of, summarise
from bench.runs import wait_for_first_request
from bench.stats import percentile
from bench.stub_watch import StubSample, StubWatch


def test_percentiles_interpolate() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([0.0, 10.0], 0.99) == 9.9


def test_the_sustained_rate_leaves_out_ramp_up_and_tail() -> None:
    watch = StubWatch(httpx.Client())
    # A slow start (500 in 10 s), 1000/s from 10 s to 19 s, then a slow tail.
    watch.samples = [
        StubSample(at=0.0, requests=0, ok=0, cpu_seconds=0.0),
        StubSample(at=10.0, requests=500, ok=500, cpu_seconds=0.05),
        StubSample(at=19.0, requests=9500, ok=9500, cpu_seconds=0.95),
        StubSample(at=30.0, requests=10000, ok=10000, cpu_seconds=1.0),
    ]

    assert watch.sustained_rate(10_000) == 1000.0
    assert watch.cpu_per_request_ms() == 0.1


def test_this_process_reads_its_own_usage() -> None:
    sum(range(200_000))  # some CPU to read back
    usage = machine.usage(os.getpid())

    assert usage is not None
    assert usage.cpu_seconds > 0
    assert usage.peak_rss_mib >= usage.rss_mib > 0
    assert machine.usage(2**22 + 12345) is None


def test_profiles_are_summarised_by_function_and_package(tmp_path: Path) -> None:
    site = "/venv/lib/python3.11/site-packages"
    profile = tmp_path / "sender.collapsed.txt"
    profile.write_text(
        f"process 1:main;run (herald_sender/main.py:10);post ({site}/aiohttp/client.py:5) 30\n"
        f"process 1:main;run (herald_sender/main.py:10);dumps ({site}/pydantic/main.py:7) 10\n"
    )

    summary = summarise(profile)

    assert summary["samples"] == 40
    assert summary["self_by_package"][0] == ("aiohttp", 75.0)
    assert ("herald_sender", 100.0) in summary["total_by_package"]
    assert module_of("/usr/lib/python3.11/asyncio/events.py") == "stdlib:asyncio"


def test_the_headline_dispatch_runs_at_full_size_under_api_load() -> None:
    options = build_parser().parse_args(["--size", "1000000", "--senders", "1,2"])

    chosen = plans(options)

    assert len(chosen) == 4
    headline = [plan for plan in chosen if plan.api_load]
    assert len(headline) == 1
    assert (headline[0].latency_ms, headline[0].senders, headline[0].size) == (50.0, 2, 100_000)
    assert {plan.size for plan in chosen if not plan.api_load} == {10_000}
    assert len({plan.name for plan in chosen}) == len(chosen)


def test_the_previous_run_is_the_newest_of_the_same_size(tmp_path: Path) -> None:
    for stamp, size in (("20300101T000000Z", 1000), ("20300102T000000Z", 5), ("x", 1000)):
        (tmp_path / f"bench-{stamp}.json").write_text(
            json.dumps({"meta": {"size": size}, "runs": [], "targets": []})
        )
    (tmp_path / "bench-20300103T000000Z.json").write_text("{not json")

    same = previous_results(tmp_path, 1000)
    other = previous_results(tmp_path, 77)

    assert same is not None
    assert same["meta"]["file"].endswith("bench-x.json")
    assert other is not None
    assert other["meta"]["file"].endswith("bench-x.json")
    assert previous_results(tmp_path / "none", 1000) is None


def _stub_answering(counts: list[int]) -> StubWatch:
    """A watch over a stub whose request counter reads ``counts``, one per sample."""

    def stats(request: httpx.Request) -> httpx.Response:
        count = counts.pop(0) if len(counts) > 1 else counts[0]
        return httpx.Response(
            200, json={"requests": count, "by_outcome": {"ok": count}, "cpu_seconds": 0.0}
        )

    return StubWatch(httpx.Client(base_url="http://stub", transport=httpx.MockTransport(stats)))


def test_the_stub_window_opens_at_the_load_s_first_request_not_at_its_spawn() -> None:
    watch = _stub_answering([0, 0, 0, 7])
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as load:
        try:
            wait_for_first_request(watch, load)
        finally:
            load.kill()

    assert [sample.requests for sample in watch.samples] == [0, 0, 0, 7]


def test_a_load_generator_that_dies_before_its_first_request_is_reported() -> None:
    watch = _stub_answering([0])
    with subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]) as load:
        load.wait()
        with pytest.raises(RuntimeError, match="exited with 3"):
            wait_for_first_request(watch, load)
