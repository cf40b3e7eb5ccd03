"""``python -m bench`` end to end at a tiny size: it starts herald, measures, prints the
table and writes the JSON (no figure is asserted: the machine is shared)."""

import json
from pathlib import Path

import pytest

from bench.cli import main

pytestmark = pytest.mark.timeout(240)


def test_a_tiny_benchmark_writes_results_and_prints_the_table(
    database_server_url: str,
    amqp_server_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(
        [
            "--only",
            "import,materialise,dispatch,stub",
            "--size",
            "300",
            "--senders",
            "2",
            "--latencies",
            "50",
            "--results-dir",
            str(tmp_path),
            "--database-url",
            database_server_url,
            "--amqp-url",
            amqp_server_url,
        ]
    )

    files = list(tmp_path.glob("bench-*.json"))
    assert len(files) == 1
    document = json.loads(files[0].read_text())
    runs = {run["run"]: run for run in document["runs"]}
    assert set(runs) == {"import", "materialise", "dispatch", "stub"}
    assert runs["import"]["created"] == 300
    assert runs["materialise"]["complete"] is True
    dispatch = runs["dispatch"]
    assert dispatch["complete"] is True
    assert dispatch["statuses"]["sent"] == 300
    assert dispatch["duplicates_at_stub"] == 0
    assert dispatch["api_under_load"]["get_mailing_stats"]["errors"] == 0
    assert dispatch["resources"]["by_process"]["scheduler"]["peak_rss_mib"] > 0
    stub = runs["stub"]
    assert stub["served_per_s"] > 0
    assert stub["client"]["ok"] > 0
    assert stub["cpu_ms_per_request"] > 0
    assert stub["capacity_per_core"] == round(1000 / stub["cpu_ms_per_request"])
    assert len(document["targets"]) > 5
    printed = capsys.readouterr().out
    assert "TARGETS" in printed
    assert "DISPATCH" in printed
    assert "STUB (alone" in printed
    assert str(files[0]) in printed


def test_a_tiny_rate_limit_run_reports_the_limit_and_its_cost(
    database_server_url: str,
    amqp_server_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(
        [
            *("--only", "ratelimit", "--sweep-size", "300", "--rate-limits", "500"),
            *("--results-dir", str(tmp_path)),
            *("--database-url", database_server_url, "--amqp-url", amqp_server_url),
        ]
    )

    [file] = tmp_path.glob("bench-*.json")
    document = json.loads(file.read_text())
    unlimited, limited = document["runs"]
    assert (unlimited["plan"]["rate_limit"], limited["plan"]["rate_limit"]) == (0, 500)
    assert limited["complete"] is True
    assert limited["statuses"]["sent"] == 300
    figures = limited["rate_limit"]
    assert figures["requests"] == 300
    assert 0 < figures["busiest_1s_requests"] <= 500 * 1.05
    # Leases of at most 50 ms of the rate: 25 slots each at most.
    assert figures["leases"] >= 300 / 25
    assert set(figures["vs_unlimited"]) == {
        "herald_cpu_ms_per_message",
        "postgres_cpu_ms_per_message",
    }
    assert "RATE LIMIT" in capsys.readouterr().out
