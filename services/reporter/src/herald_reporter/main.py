"""``herald-reporter run``: configure logging and metrics, run the service until SIGTERM/SIGINT."""

import asyncio
import contextlib
import signal

import structlog
import uvloop

from herald_common.db.engine import create_engine, create_sessionmaker
from herald_common.logging import configure_logging
from herald_common.metrics import REPORTS_FAILED, serve_metrics
from herald_reporter.service import SERVICE, Reporter
from herald_reporter.settings import ReporterSettings

# SIGTERM must end the process within 10 s. A send in progress is abandoned then: its
# claim's lease lets a replica (or this one, restarted) send the report again.
SHUTDOWN_TIMEOUT = 9.0
# One connection for the loop; a second for the rare moment a claim and a read overlap.
POOL_SIZE = 2

log = structlog.get_logger()


def run(settings: ReporterSettings) -> int:
    configure_logging(SERVICE, level=settings.log_level, fmt=settings.log_format)
    # Both series exist from the start, so that rate() and alerts see a 0, not nothing.
    for reason in ("rejected", "unavailable"):
        REPORTS_FAILED.labels(reason=reason)
    serve_metrics(settings.reporter_metrics_port, host=settings.metrics_host)
    uvloop.run(run_until_signalled(settings))
    return 0


async def run_until_signalled(settings: ReporterSettings) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    engine = create_engine(settings, pool_size=POOL_SIZE)
    try:
        reporter = Reporter(settings, create_sessionmaker(engine))
        service = asyncio.create_task(reporter.run(stopping))
        stop_requested = asyncio.create_task(stopping.wait())
        await asyncio.wait({service, stop_requested}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            log.info("reporter.stopping")
            _, pending = await asyncio.wait({service}, timeout=SHUTDOWN_TIMEOUT)
            if pending:
                log.warning("reporter.shutdown_timeout")
                service.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await service
        stop_requested.cancel()
        service.result()  # re-raise a crash (the process exits non-zero)
    finally:
        await engine.dispose()
