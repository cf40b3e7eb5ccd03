"""``herald-api``: serve the REST API with uvicorn (HERALD_API_HOST, HERALD_API_PORT).

With HERALD_API_WORKERS above 1, uvicorn runs that many worker processes, and their
metrics are merged through prometheus_client's multiprocess mode: a fresh temporary
directory unless PROMETHEUS_MULTIPROC_DIR names one.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
import uvicorn
from fastapi import FastAPI
from pydantic import Field

from herald_api.app import create_app
from herald_api.settings import ApiSettings
from herald_common.logging import configure_logging
from herald_common.metrics import MULTIPROC_DIR_ENV, clear_multiprocess_dir

# uvicorn's graceful shutdown budget, inside the 10 s a service gets to stop.
GRACEFUL_SHUTDOWN_SECONDS = 7

log = structlog.get_logger()


class ServerSettings(ApiSettings):
    """The api's settings plus how many processes serve it."""

    api_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="uvicorn worker processes; above 1 their metrics are merged through "
        "PROMETHEUS_MULTIPROC_DIR (a temporary directory unless set).",
    )


def main() -> None:
    settings = ServerSettings()
    configure_logging("api", level=settings.log_level, fmt=settings.log_format)
    if settings.api_workers == 1:
        if os.environ.get(MULTIPROC_DIR_ENV):
            clear_multiprocess_dir(os.environ[MULTIPROC_DIR_ENV])
        _serve(create_app(settings), settings)
        return
    with multiprocess_metrics() as directory:
        log.info("api.workers", workers=settings.api_workers, metrics_dir=directory)
        # Workers are spawned (fresh interpreters), so each imports prometheus_client
        # with the directory already in its environment.
        _serve(f"{__name__}:create_worker_app", settings, workers=settings.api_workers)


def _serve(app: FastAPI | str, settings: ServerSettings, *, workers: int | None = None) -> None:
    uvicorn.run(
        app,
        factory=isinstance(app, str),
        workers=workers,
        host=settings.api_host,
        port=settings.api_port,
        access_log=False,  # RequestContextMiddleware writes the access log
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def create_worker_app() -> FastAPI:
    """What each uvicorn worker serves; it reads the same environment as ``main``."""
    settings = ServerSettings()
    configure_logging("api", level=settings.log_level, fmt=settings.log_format)
    return create_app(settings)


@contextmanager
def multiprocess_metrics() -> Iterator[str]:
    """The directory the workers share their metrics through, emptied of earlier runs.

    One this process made is removed afterwards; one the operator named is left in place.
    """
    given = os.environ.get(MULTIPROC_DIR_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        clear_multiprocess_dir(given)
        yield given
        return
    directory = tempfile.mkdtemp(prefix="herald-api-metrics-")
    os.environ[MULTIPROC_DIR_ENV] = directory
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROC_DIR_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
