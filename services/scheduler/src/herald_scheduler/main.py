"""``herald-scheduler``: build settings, configure logging and metrics, run until SIGTERM/SIGINT."""

import asyncio
import contextlib
import signal

import structlog
import uvloop

from herald_common.logging import configure_logging
from herald_common.metrics import serve_metrics
from herald_scheduler.service import SERVICE, run_scheduler
from herald_scheduler.settings import ScheduleSettings

__all__ = ["ScheduleSettings", "main"]

# SIGTERM must end the process within 10 s; loops drain their batch well inside this.
SHUTDOWN_TIMEOUT = 9.0

log = structlog.get_logger()


def main() -> None:
    settings = ScheduleSettings()
    configure_logging(SERVICE, level=settings.log_level, fmt=settings.log_format)
    serve_metrics(settings.scheduler_metrics_port, host=settings.metrics_host)
    # uvloop: less CPU per message than asyncio's own loop (README, Performance).
    uvloop.run(run_until_signalled(settings))


async def run_until_signalled(settings: ScheduleSettings) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    service = asyncio.create_task(run_scheduler(settings, stopping))
    stop_requested = asyncio.create_task(stopping.wait())
    await asyncio.wait({service, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
    if stopping.is_set():
        log.info("scheduler.stopping")
        _, pending = await asyncio.wait({service}, timeout=SHUTDOWN_TIMEOUT)
        if pending:
            log.warning("scheduler.shutdown_timeout")
            service.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await service
    stop_requested.cancel()
    service.result()  # re-raise a crash (the process exits non-zero)
