"""The stub as its console script runs it: the record file, SIGTERM, and bad flags."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from bench.system import free_port
from tests.integration.probe_stub.conftest import AUTH, message

STUB = [sys.executable, "-m", "herald_probe_stub"]


@contextmanager
def stub_process(*flags: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    process = subprocess.Popen(
        [*STUB, "--port", str(port), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            pytest.fail("the stub did not start")
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def _records(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_the_record_file_gets_a_line_per_request_and_survives_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "requests.ndjson"
    with stub_process("--record", str(path)) as (process, url):
        for msg_id in range(3):
            httpx.post(f"{url}/v1/send/{msg_id}", json=message(msg_id), headers=AUTH)
        httpx.post(f"{url}/v1/send/9", json=message(9))
        time.sleep(0.6)  # three flush intervals
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    records = _records(path)
    assert [(record["id"], record["outcome"]) for record in records] == [
        (0, "ok"),
        (1, "ok"),
        (2, "ok"),
        (9, "unauthorized"),
    ]
    assert all(record["answered_at"] is not None for record in records)


def test_sigterm_stops_the_stub_promptly_despite_a_hanging_request(tmp_path: Path) -> None:
    path = tmp_path / "requests.ndjson"
    with stub_process("--hang-rate", "1", "--record", str(path)) as (process, url):
        client = httpx.Client(timeout=30)
        with pytest.raises(httpx.ReadTimeout):
            client.post(f"{url}/v1/send/1", json=message(1), headers=AUTH, timeout=0.3)
        # A second request stays hanging, its connection open, while the stub stops.
        connection = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        body = orjson.dumps(message(2))
        connection.sendall(
            b"POST /v1/send/2 HTTP/1.1\r\nhost: stub\r\nauthorization: Bearer dev-probe-token\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        )
        time.sleep(0.2)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=10)
        stopped_after = time.monotonic() - started
        connection.close()
        client.close()

    # uvicorn shuts down gracefully, then re-raises the signal so the parent sees it.
    assert returncode == -signal.SIGTERM
    # Without the graceful-shutdown timeout it would wait out the 30 s hang.
    assert stopped_after < 5
    assert sorted(record["id"] for record in _records(path)) == [1, 2]


@pytest.mark.parametrize(
    ("flags", "environ", "message_part"),
    [
        (["--error-rate", "2"], {}, "argument --error-rate: must be a probability"),
        ([], {"HERALD_STUB_PORT": "http"}, "argument --port: must be a port number"),
    ],
)
def test_a_bad_flag_exits_with_a_usage_message_not_a_traceback(
    flags: list[str], environ: dict[str, str], message_part: str
) -> None:
    result = subprocess.run(
        [*STUB, *flags],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **environ},
        check=False,
    )

    assert result.returncode == 2
    assert message_part in result.stderr
    assert "usage: herald-probe-stub" in result.stderr
    assert "Traceback" not in result.stderr
