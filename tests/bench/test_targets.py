"""The targets read the right figures and judge them; missing figures are neither pass nor fail."""

from bench.targets import judge_all
from tests.bench.figures import dispatch_result


def by_label(targets: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(t["label"]): t for t in targets}


def test_a_fast_cheap_headline_passes_its_targets() -> None:
    targets = by_label(judge_all([dispatch_result()]))

    assert targets["end to end, messages/s"]["passed"] is True
    assert targets["herald CPU per message"]["passed"] is True
    assert targets["REST API p99 during dispatch"]["passed"] is True
    assert targets["duplicates at the stub (any run)"]["value"] == 0


def test_a_slow_costly_headline_fails_them() -> None:
    slow = dispatch_result(msgs_per_s=800, cpu_ms=1.0, api_p99_ms=150)
    targets = by_label(judge_all([slow]))

    assert targets["end to end, messages/s"]["passed"] is False
    assert targets["herald CPU per message"]["passed"] is False
    assert targets["REST API p99 during dispatch"]["value"] == 150
    assert targets["REST API p99 during dispatch"]["passed"] is False


def test_a_duplicate_in_any_run_fails_and_the_least_headroom_counts() -> None:
    sweep = dispatch_result(
        name="dispatch-0ms-1s-100",
        senders=1,
        latency_ms=0,
        api_load=False,
        duplicates=2,
        headroom=2.0,
    )
    targets = by_label(judge_all([dispatch_result(), sweep]))

    assert targets["duplicates at the stub (any run)"]["value"] == 2
    assert targets["duplicates at the stub (any run)"]["passed"] is False
    # Without a stub run, the least of the runs' own estimates.
    assert targets["stub headroom, capacity / throughput"]["value"] == 2.0
    assert targets["stub headroom, capacity / throughput"]["passed"] is False


def stub_run(capacity_per_core: float) -> dict[str, object]:
    return {"run": "stub", "name": "stub-capacity-50ms", "capacity_per_core": capacity_per_core}


def test_the_stub_headroom_is_its_measured_capacity_over_the_headline_throughput() -> None:
    sweep = dispatch_result(name="dispatch-0ms-1s-100", msgs_per_s=5000, api_load=False)
    results = [dispatch_result(msgs_per_s=4000), sweep, stub_run(16_000)]
    targets = by_label(judge_all(results))

    assert targets["stub headroom, capacity / throughput"]["value"] == 4.0
    assert targets["stub headroom, capacity / throughput"]["passed"] is True

    targets = by_label(judge_all([*results[:2], stub_run(11_000)]))
    assert targets["stub headroom, capacity / throughput"]["value"] == 2.75
    assert targets["stub headroom, capacity / throughput"]["passed"] is False


def test_runs_that_were_not_done_are_not_judged() -> None:
    targets = by_label(judge_all([]))

    assert all(t["passed"] is None and t["value"] is None for t in targets.values())
