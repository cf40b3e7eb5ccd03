"""Fixtures for end-to-end tests: a running herald, and ways to look into its ledger."""

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fresh_vhost
from tests.e2e.system import System, running_system

StartSystem = Callable[..., System]


@pytest.fixture
def start_system(
    database_server_url: str, amqp_server_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StartSystem]:
    """Start a whole herald on a fresh database and vhost; it stops at the end of the test.

    On failure the tail of every service's log is printed.
    """
    stack = ExitStack()
    systems: list[System] = []

    def start(**options: Any) -> System:
        vhost = f"herald-e2e-{uuid.uuid4().hex[:8]}"
        amqp_url = stack.enter_context(fresh_vhost(amqp_server_url, vhost))
        system = stack.enter_context(
            running_system(
                database_server_url=database_server_url,
                amqp_url=amqp_url,
                log_dir=tmp_path / f"logs-{len(systems)}",
                **options,
            )
        )
        systems.append(system)
        return system

    with stack:
        yield start
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            for system in systems:
                for name in system.services:
                    tail = system.logs(name)[-3000:]
                    print(f"\n===== {name} log (tail) =====\n{tail}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
