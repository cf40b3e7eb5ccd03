"""The ``herald-sender`` process: wiring and signals."""

import asyncio
import contextlib
import signal

import structlog
import uvloop

from herald_common.broker.connection import connect
from herald_common.db.engine import create_engine
from herald_common.logging import configure_logging
from herald_common.metrics import serve_metrics
from herald_sender.circuit import CircuitBreaker
from herald_sender.consumer import CommandConsumer
from herald_sender.database_clock import DatabaseClock
from herald_sender.delivery import Courier, DeliveryPolicy
from herald_sender.leases import LeaseKeeper
from herald_sender.mailing_watch import MailingWatch
from herald_sender.probe_client import ProbeClient, open_probe_client
from herald_sender.rate_limit import MailingRateLimits, SharedRateLimit
from herald_sender.settings import SenderSettings

log = structlog.get_logger()


async def run(
    settings: SenderSettings, stop: asyncio.Event, *, client: ProbeClient | None = None
) -> None:
    """Run a sender until ``stop`` is set; ``client`` replaces the HTTP transport."""
    engine = create_engine(settings)
    connection = await connect(settings.amqp_url, "herald-sender")
    try:
        async with contextlib.AsyncExitStack() as stack:
            if client is None:
                client = await stack.enter_async_context(
                    open_probe_client(
                        settings.sender_transport,
                        settings.probe_url,
                        settings.probe_token,
                        concurrency=settings.sender_concurrency,
                    )
                )
            breaker = CircuitBreaker(
                window=settings.sender_breaker_window,
                failure_rate=settings.sender_breaker_failure_rate,
                cooldown=settings.sender_breaker_cooldown,
                max_cooldown=settings.sender_breaker_max_cooldown,
            )
            watch = MailingWatch(engine)
            leases = LeaseKeeper(engine)
            # Ends and windows are judged by the database's clock, which due_at, the
            # dispatcher and the sweeper use, whatever this machine's clock says.
            clock = DatabaseClock(engine)
            await clock.measure_or_keep()
            rate = None
            if settings.probe_rate_limit > 0:
                rate = SharedRateLimit(engine, settings.probe_rate_limit, clock.now)
                await rate.start()
                stack.callback(rate.close)
            mailing_rates = MailingRateLimits(engine, clock.now, watch.current)
            stack.callback(mailing_rates.close)
            courier = Courier(
                client,
                breaker,
                DeliveryPolicy(
                    concurrency=settings.sender_concurrency,
                    min_concurrency=settings.sender_min_concurrency,
                    request_timeout=settings.sender_request_timeout,
                    min_request_timeout=settings.sender_min_request_timeout,
                    inprocess_attempts=settings.sender_inprocess_attempts,
                    max_attempts=settings.sender_max_attempts,
                ),
                watch=watch,
                clock=clock.now,
                rate=rate,
                mailing_rates=mailing_rates,
            )
            consumer = CommandConsumer(
                connection=connection,
                engine=engine,
                courier=courier,
                breaker=breaker,
                queue_type=settings.queue_type,
                prefetch=settings.sender_prefetch,
                drain_seconds=settings.sender_drain_seconds,
                watch=watch,
                leases=leases,
            )
            # The watch and the leases outlive the drain: messages still in hand are
            # judged by current terms and stay held until the consumer is done.
            drained = asyncio.Event()
            watching = asyncio.create_task(watch.run(drained))
            measuring = asyncio.create_task(clock.run(drained))
            renewing = asyncio.create_task(leases.run(drained))
            try:
                await consumer.run(stop)
            finally:
                stop.set()
                drained.set()
                await asyncio.gather(watching, measuring, renewing)
    finally:
        await connection.close()
        await engine.dispose()


async def _serve(settings: SenderSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await run(settings, stop)


def main() -> None:
    settings = SenderSettings()
    configure_logging("sender", level=settings.log_level, fmt=settings.log_format)
    serve_metrics(settings.sender_metrics_port, host=settings.metrics_host)
    log.info(
        "sender.configured",
        probe_url=settings.probe_url,
        concurrency=settings.sender_concurrency,
        prefetch=settings.sender_prefetch,
        transport=settings.sender_transport,
        rate_limit=settings.probe_rate_limit or None,
    )
    # uvloop: less CPU per message than asyncio's own loop (README, Performance).
    uvloop.run(_serve(settings))


if __name__ == "__main__":
    main()
