"""The api's /metrics: open, parseable, and the sum over every worker when there are several."""

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from bench.system import BIN, free_port, wait_until_listening
from herald_common.metrics import MULTIPROC_DIR_ENV

HEALTHZ = "/healthz"
MAX_REQUESTS = 400


def samples(text: str, name: str, **labels: str) -> list[float]:
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


async def test_metrics_are_open_and_parse(anonymous: httpx.AsyncClient) -> None:
    await anonymous.get(HEALTHZ)

    response = await anonymous.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"herald_http_requests", "herald_outbox_backlog", "herald_messages"} <= families
    assert sum(samples(response.text, "herald_http_requests_total", route=HEALTHZ)) >= 1


@contextmanager
def api_with_two_workers(database_url: str, amqp_url: str, log_path: Path) -> Iterator[int]:
    """herald-api with HERALD_API_WORKERS=2 and no PROMETHEUS_MULTIPROC_DIR; its port."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != MULTIPROC_DIR_ENV} | {
        "HERALD_DATABASE_URL": database_url,
        "HERALD_AMQP_URL": amqp_url,
        "HERALD_API_PORT": str(port),
        "HERALD_API_WORKERS": "2",
        "HERALD_LOG_FORMAT": "json",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "herald-api")], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until_listening(port, process)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, log_path.read_text()


def metrics_dir(log_path: Path) -> Path:
    for line in log_path.read_text().splitlines():
        if line.startswith("{") and orjson.loads(line).get("event") == "api.workers":
            return Path(orjson.loads(line)["metrics_dir"])
    raise AssertionError(f"no api.workers line in {log_path.read_text()}")


def healthz_by_worker(directory: Path) -> dict[int, float]:
    """/healthz requests each worker counted, read from its own values file."""
    counts: dict[int, float] = {}
    for values in directory.glob("counter_*.db"):
        pid = int(values.stem.rsplit("_", 1)[1])
        # merge() has no annotations upstream.
        for metric in MultiProcessCollector.merge([str(values)]):  # type: ignore[no-untyped-call]
            for sample in metric.samples:
                wanted = sample.name == "herald_http_requests_total"
                if wanted and sample.labels["route"] == HEALTHZ:
                    counts[pid] = counts.get(pid, 0) + sample.value
    return counts


def test_two_workers_report_every_request_between_them(
    database_url: str, amqp_url: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "api.log"
    with api_with_two_workers(database_url, amqp_url, log_path) as port:
        directory = metrics_dir(log_path)
        base = f"http://127.0.0.1:{port}"
        made = 0
        # Connections go to whichever worker accepts first: keep asking, on new
        # connections, until both have answered some (bounded).
        while made < MAX_REQUESTS and (made < 20 or len(healthz_by_worker(directory)) < 2):
            response = httpx.get(base + HEALTHZ, headers={"Connection": "close"})
            assert response.status_code == 200
            made += 1

        by_worker = healthz_by_worker(directory)
        assert len(by_worker) == 2, f"one worker answered all {made} requests: {by_worker}"
        assert sum(by_worker.values()) == made
        for _ in range(4):  # whichever worker answers the scrape, it reports both
            scrape = httpx.get(base + "/metrics", headers={"Connection": "close"})
            assert scrape.status_code == 200
            assert sum(samples(scrape.text, "herald_http_requests_total", route=HEALTHZ)) == made
            durations = samples(
                scrape.text, "herald_http_request_duration_seconds_count", route=HEALTHZ
            )
            assert sum(durations) == made

    # The directory the api made for its workers goes away with it.
    assert not directory.exists()
    lines = [orjson.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
    assert lines
    assert all(line["service"] == "api" for line in lines), lines
