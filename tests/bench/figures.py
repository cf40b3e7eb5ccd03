"""Made-up run results shaped like the benchmark's, for tests of its report and targets."""

from typing import Any


def dispatch_result(
    *,
    name: str = "dispatch-50ms-2s-1000",
    size: int = 1000,
    senders: int = 2,
    latency_ms: float = 50.0,
    api_load: bool = True,
    msgs_per_s: float = 3500.0,
    cpu_ms: float = 0.25,
    duplicates: int = 0,
    api_p99_ms: float = 40.0,
    headroom: float = 5.0,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "run": "dispatch",
        "name": name,
        "started_at": "2030-01-01T00:00:00+00:00",
        "load_average_at_start": [1.0, 1.0, 1.0],
        "plan": {
            "size": size,
            "senders": senders,
            "latency_ms": latency_ms,
            "jitter_ms": 10.0 if latency_ms else 0.0,
            "stub_faults": [],
            "api_load": api_load,
        },
        "complete": True,
        "statuses": {"sent": size},
        "first_send_s": 0.5,
        "all_rows_s": 0.2,
        "all_final_s": size / msgs_per_s,
        "end_to_end_msgs_per_s": msgs_per_s,
        "stub_msgs_per_s": msgs_per_s,
        "stub_sustained_msgs_per_s": msgs_per_s,
        "sent_minus_due": {"p50_ms": 100.0, "p99_ms": 300.0, "sent": size},
        "duplicates_at_stub": duplicates,
        "sends_after_end": 0,
        "stub": {
            "requests": size,
            "by_outcome": {"ok": size},
            "duplicate_ok_ids": duplicates,
            "cpu_ms_per_request": 0.1,
            "cpu_share_of_one_core": 0.3,
            "capacity_requests_per_s": 10000.0,
            "headroom": headroom,
        },
        "resources": {
            "by_process": {
                "scheduler": {"cpu_seconds": 0.1, "peak_rss_mib": 80.0, "processes": 1},
                "sender-1": {"cpu_seconds": 0.1, "peak_rss_mib": 90.0, "processes": 1},
            },
            "herald_cpu_seconds": cpu_ms * size / 1000,
            "herald_cpu_ms_per_message": cpu_ms,
            "postgres_cpu_ms_per_message": 0.1,
            "rabbitmq_cpu_ms_per_message": 0.05,
            "peak_rss_mib": {"api": 100.0, "scheduler": 80.0, "sender": 90.0},
        },
    }
    if api_load:
        result["api_under_load"] = {
            "get_mailing_stats": {
                "requests": 10,
                "errors": 0,
                "p50_ms": 10.0,
                "p99_ms": api_p99_ms,
                "max_ms": api_p99_ms,
            },
            "post_client": {
                "requests": 10,
                "errors": 0,
                "p50_ms": 12.0,
                "p99_ms": 20.0,
                "max_ms": 20.0,
            },
        }
    return result


def document(runs: list[dict[str, Any]], targets: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "meta": {
            "started_at": "2030-01-01T00:00:00+00:00",
            "size": 1000,
            "commit": "abc1234",
            "machine": {
                "cpus": 2,
                "cpu_model": "Test CPU",
                "memory_gib": 4.0,
                "postgresql": "15",
                "rabbitmq": "3.10",
            },
            "file": "bench-20300101T000000Z.json",
        },
        "runs": runs,
        "targets": targets,
    }


def rate_limit_result(
    limit: float,
    *,
    sustained: float = 4000.0,
    busiest: int = 4200,
    herald_cpu_ms: float = 0.25,
    postgres_cpu_ms: float = 0.06,
    leases: int | None = None,
) -> dict[str, Any]:
    """A ratelimit run as bench.runs.dispatch returns it (before compare_rate_limits)."""
    name = f"ratelimit-{f'{limit:g}' if limit else 'off'}-50ms-2s-10000"
    result = dispatch_result(name=name, size=10_000, api_load=False, cpu_ms=herald_cpu_ms)
    result["run"] = "ratelimit"
    result["plan"]["rate_limit"] = limit
    result["stub_sustained_msgs_per_s"] = sustained
    result["resources"]["postgres_cpu_ms_per_message"] = postgres_cpu_ms
    result["rate_limit"] = {
        "limit": limit or None,
        "requests": 10_000,
        "busiest_1s_requests": busiest,
        "busiest_1s_over_limit": round(busiest / limit, 3) if limit else None,
        "sustained_over_limit": round(sustained / limit, 3) if limit else None,
        "leases": leases,
        "requests_per_lease": round(10_000 / leases, 1) if leases else None,
    }
    return result
