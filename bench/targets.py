"""The issue's targets, each read from a run's figures and judged pass or fail.

They apply to the headline dispatch (stub latency 50 ms, 2 senders) unless they say
otherwise. Materialise and import targets are rates (20 s per 1M rows, 10 s per 100k),
so that they apply at any ``--size``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Results = list[dict[str, Any]]

HEADLINE_LATENCY_MS = 50.0
HEADLINE_SENDERS = 2
# The import must not hold the file: the api may grow by at most this while it reads one.
IMPORT_RSS_GROWTH_MIB = 64.0


@dataclass(frozen=True)
class Target:
    label: str
    op: str  # ">=" or "<="
    limit: float
    unit: str
    value: Callable[[Results], float | None]

    def judge(self, results: Results) -> dict[str, Any]:
        value = self.value(results)
        passed = None
        if value is not None:
            passed = value >= self.limit if self.op == ">=" else value <= self.limit
        return {
            "label": self.label,
            "op": self.op,
            "limit": self.limit,
            "unit": self.unit,
            "value": value,
            "passed": passed,
        }


def find(results: Results, run: str, **plan: Any) -> dict[str, Any] | None:
    for result in results:
        if result.get("run") != run:
            continue
        if all(result.get("plan", {}).get(k) == v for k, v in plan.items()):
            return result
    return None


def headline(results: Results) -> dict[str, Any] | None:
    return find(
        results, "dispatch", latency_ms=HEADLINE_LATENCY_MS, senders=HEADLINE_SENDERS, api_load=True
    )


def _dig(result: dict[str, Any] | None, *path: str) -> Any:
    value: Any = result
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _from_headline(*path: str) -> Callable[[Results], float | None]:
    return lambda results: _dig(headline(results), *path)


def _worst(*path: str) -> Callable[[Results], float | None]:
    """The largest value over every run that has it (duplicates, sends after end)."""

    def value(results: Results) -> float | None:
        values = [v for r in results if (v := _dig(r, *path)) is not None]
        return max(values) if values else None

    return value


def _least(*path: str) -> Callable[[Results], float | None]:
    """The smallest value over every run that has it (the stub's headroom)."""

    def value(results: Results) -> float | None:
        values = [v for r in results if (v := _dig(r, *path)) is not None]
        return min(values) if values else None

    return value


def _stub_headroom(results: Results) -> float | None:
    """What one core of the stub serves at the headline latency (the stub run: one core over
    its CPU per request at its limit) over the measured throughput (the headline's, end to
    end); without a stub run, the least of the runs' own estimates."""
    capacity = _dig(find(results, "stub"), "capacity_per_core")
    throughput = _dig(headline(results), "end_to_end_msgs_per_s")
    if capacity is None or not throughput:
        return _least("stub", "headroom")(results)
    return round(float(capacity) / float(throughput), 2)


def _import_growth(results: Results) -> float | None:
    imported = find(results, "import")
    if imported is None or imported.get("api_rss_before_mib") is None:
        return None
    return round(float(imported["api_peak_rss_mib"]) - float(imported["api_rss_before_mib"]), 1)


def _first_send(results: Results) -> float | None:
    values = [
        _dig(headline(results), "first_send_s"),
        _dig(find(results, "latency"), "first_send_max_s"),
    ]
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _rate_limited(results: Results, *, binding: bool | None = None) -> list[dict[str, Any]]:
    return [
        figures
        for r in results
        if r.get("run") == "ratelimit" and (figures := r.get("rate_limit") or {}).get("limit")
        if binding is None or figures.get("binding") is binding
    ]


def _busiest_over_limit(results: Results) -> float | None:
    """The worst second at the stub over the limit, of every run with a limit."""
    values = [f["busiest_1s_over_limit"] for f in _rate_limited(results)]
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _reached_over_binding_limit(results: Results) -> float | None:
    """The steady rate over the limit, of the runs whose limit binds: not undershot."""
    values = [f["sustained_over_limit"] for f in _rate_limited(results, binding=True)]
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _api_p99(results: Results) -> float | None:
    load = _dig(headline(results), "api_under_load")
    if not load:
        return None
    values = [v["p99_ms"] for v in load.values() if v.get("p99_ms") is not None]
    return max(values) if values else None


TARGETS = (
    Target("end to end, messages/s", ">=", 3000, "msg/s", _from_headline("end_to_end_msgs_per_s")),
    Target("first send after creation", "<=", 1.0, "s", _first_send),
    Target(
        "herald CPU per message",
        "<=",
        0.3,
        "ms",
        _from_headline("resources", "herald_cpu_ms_per_message"),
    ),
    Target(
        "materialise rate (1M in 20 s)",
        ">=",
        50_000,
        "rows/s",
        lambda results: _dig(find(results, "materialise"), "rows_per_s"),
    ),
    Target(
        "import rate (100k in 10 s)",
        ">=",
        10_000,
        "rows/s",
        lambda results: _dig(find(results, "import"), "rows_per_s"),
    ),
    Target("import: api memory growth", "<=", IMPORT_RSS_GROWTH_MIB, "MiB", _import_growth),
    Target("sender peak RSS", "<=", 150, "MiB", _worst("resources", "peak_rss_mib", "sender")),
    Target(
        "scheduler peak RSS (materialise)",
        "<=",
        250,
        "MiB",
        lambda results: _dig(find(results, "materialise"), "scheduler_peak_rss_mib"),
    ),
    Target("REST API p99 during dispatch", "<=", 100, "ms", _api_p99),
    Target("duplicates at the stub (any run)", "<=", 0, "", _worst("duplicates_at_stub")),
    Target("sends after end_at (any run)", "<=", 0, "", _worst("sends_after_end")),
    Target("stub headroom, capacity / throughput", ">=", 3, "x", _stub_headroom),
    # The test of HERALD_PROBE_RATE_LIMIT: at most the limit + 5 % in any second,
    # and no more than 10 % under it while there is a backlog.
    Target("rate limit: busiest 1 s / limit", "<=", 1.05, "x", _busiest_over_limit),
    Target("rate limit: steady rate / limit", ">=", 0.9, "x", _reached_over_binding_limit),
)


def judge_all(results: Results) -> list[dict[str, Any]]:
    return [target.judge(results) for target in TARGETS]
