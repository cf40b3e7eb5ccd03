"""Schemathesis over every operation of /openapi.json, with a valid key, against a running
herald-api, with every check and the stateful phase: no 5xx, no response that breaks the
documented schema, and no request the schema allows that is rejected (or the reverse),
but for the cross-field rules tests/fuzz/hooks.py names."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bench.system import BIN, Service, free_port, wait_until_listening
from herald_common.db import migrate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def api_server(
    database_server_url: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    database_url = (
        make_url(database_server_url)
        .set(database="herald_test_fuzz")
        .render_as_string(hide_password=False)
    )
    migrate.drop_database(database_url)
    migrate.create_database_if_missing(database_url)
    migrate.upgrade(database_url)
    port = free_port()
    env = {
        "PATH": str(BIN),
        "HERALD_DATABASE_URL": database_url,
        "HERALD_AMQP_URL": amqp_url,
        "HERALD_API_PORT": str(port),
        "HERALD_LOG_FORMAT": "json",
        "HERALD_LOG_LEVEL": "warning",
    }
    key = subprocess.run(
        [str(BIN / "herald"), "api-key", "create", "--name", "fuzz"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    log_path: Path = tmp_path_factory.mktemp("fuzz") / "api.log"
    api = Service("api", [str(BIN / "herald-api")], env, log_path)
    api.start()
    try:
        assert api.process is not None
        wait_until_listening(port, api.process)
        yield f"http://127.0.0.1:{port}", key
    finally:
        api.stop()
        migrate.drop_database(database_url)


def test_api_conforms_to_its_schema(api_server: tuple[str, str]) -> None:
    base_url, key = api_server
    result = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            f"{base_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {key}",
            "--checks",
            "all",
            "--max-examples",
            "30",
            "--seed",
            "20261129",
            "--continue-on-failure",
            "--suppress-health-check",
            "all",
        ],
        # The project root first: Canaille (a dev dependency) installs a top-level
        # `tests` package, which would otherwise shadow ours in this process.
        env={**os.environ, "PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
