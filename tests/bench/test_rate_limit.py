"""The rate-limit runs: which are chosen, the limiter's cost against the run without a
limit, whether the limit held, and how the report shows it."""

from typing import Any

from bench.cli import build_parser, rate_limit_plans
from bench.report import render
from bench.runs import compare_rate_limits
from bench.stats import busiest_window
from bench.targets import judge_all
from tests.bench.figures import document, rate_limit_result
from tests.bench.test_targets import by_label


def test_the_busiest_second_is_a_sliding_window() -> None:
    assert busiest_window([]) == 0
    # 3 within [0.5, 1.5) though no clock second holds more than 2.
    assert busiest_window([0.1, 0.5, 0.9, 1.4, 2.6]) == 3
    assert busiest_window([0.0, 1.0, 2.0]) == 1


def test_each_limit_runs_beside_one_without() -> None:
    options = build_parser().parse_args(["--rate-limits", "20000,1000", "--sweep-size", "500"])

    chosen = rate_limit_plans(options)

    assert [plan.rate_limit for plan in chosen] == [0.0, 20_000.0, 1_000.0]
    assert [plan.name for plan in chosen] == [
        "ratelimit-off-50ms-2s-500",
        "ratelimit-20000-50ms-2s-500",
        "ratelimit-1000-50ms-2s-500",
    ]
    assert all((p.senders, p.latency_ms, p.size) == (2, 50.0, 500) for p in chosen)
    # A binding limit gets the time it needs on top.
    assert chosen[2].timeout >= chosen[0].timeout + 500 / 1000


def _runs() -> list[dict[str, Any]]:
    runs = [
        rate_limit_result(0, sustained=4300, busiest=4600, herald_cpu_ms=0.25),
        rate_limit_result(
            20_000,
            sustained=4200,
            busiest=4500,
            herald_cpu_ms=0.27,
            postgres_cpu_ms=0.07,
            leases=900,
        ),
        rate_limit_result(1_000, sustained=985, busiest=1012, herald_cpu_ms=0.4, leases=210),
    ]
    compare_rate_limits(runs)
    return runs


def test_the_cost_is_against_the_run_without_a_limit_and_binding_is_told() -> None:
    unlimited, above, binding = _runs()

    assert "vs_unlimited" not in unlimited["rate_limit"]
    assert above["rate_limit"]["binding"] is False
    assert above["rate_limit"]["vs_unlimited"] == {
        "herald_cpu_ms_per_message": 0.02,
        "postgres_cpu_ms_per_message": 0.01,
    }
    assert binding["rate_limit"]["binding"] is True


def test_the_limit_must_hold_and_not_be_undershot() -> None:
    targets = by_label(judge_all(_runs()))

    assert targets["rate limit: busiest 1 s / limit"]["value"] == 1.012
    assert targets["rate limit: busiest 1 s / limit"]["passed"] is True
    # Only the binding limit is expected to be reached.
    assert targets["rate limit: steady rate / limit"]["value"] == 0.985
    assert targets["rate limit: steady rate / limit"]["passed"] is True

    burst = _runs()
    burst[2]["rate_limit"]["busiest_1s_over_limit"] = 1.2
    assert by_label(judge_all(burst))["rate limit: busiest 1 s / limit"]["passed"] is False


def test_the_report_has_a_rate_limit_section() -> None:
    runs = _runs()

    text = render(document(runs, judge_all(runs)), None)

    section = text.split("RATE LIMIT")[1].splitlines()
    labels = ("no limit", "20,000/s (above)", "1,000/s (binding)")
    rows = {
        label: next(line for line in section if line.startswith(f"  {label} ")) for label in labels
    }
    assert "+0.020" in rows["20,000/s (above)"]
    assert "1.012" in rows["1,000/s (binding)"]
    assert "≤ 1.05 x" in text


def test_a_limit_reached_is_binding_even_when_the_unlimited_run_was_slow() -> None:
    # A busy machine: without a limit the run reached only 955/s.
    runs = [
        rate_limit_result(0, sustained=955, busiest=1942),
        rate_limit_result(1_000, sustained=821, busiest=1024),
        rate_limit_result(20_000, sustained=334, busiest=986),
    ]

    compare_rate_limits(runs)

    assert runs[1]["rate_limit"]["binding"] is True
    assert runs[2]["rate_limit"]["binding"] is False
    assert by_label(judge_all(runs))["rate limit: steady rate / limit"]["passed"] is False
