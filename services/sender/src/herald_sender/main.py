"""The ``herald-sender`` process: settings, wiring, signals."""

import asyncio
import contextlib
import signal

import structlog
import uvloop
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from herald_common.broker.connection import connect
from herald_common.db.engine import create_engine
from herald_common.logging import configure_logging
from herald_common.metrics import serve_metrics
from herald_common.settings import HeraldSettings, ProbeSettings
from herald_sender.circuit import CircuitBreaker
from herald_sender.consumer import CommandConsumer
from herald_sender.database_clock import DatabaseClock
from herald_sender.delivery import Courier, DeliveryPolicy
from herald_sender.leases import LeaseKeeper
from herald_sender.mailing_watch import MailingWatch
from herald_sender.probe_client import ProbeClient, Transport, open_probe_client
from herald_sender.rate_limit import MailingRateLimits, SharedRateLimit

log = structlog.get_logger()


class SenderSettings(HeraldSettings, ProbeSettings):
    model_config = SettingsConfigDict(
        env_prefix="HERALD_", env_file=".env", extra="ignore", frozen=True
    )

    # A command is acked when all its messages are done, so one hanging or retrying
    # message holds its command: 32 (not 16) keeps the request slots busy meanwhile; the
    # faults run of make bench went from 485 to 2,100 messages/s (64: 3,300, but +10 MiB).
    sender_prefetch: int = Field(default=32, ge=1, description="Commands taken at a time.")
    sender_concurrency: int = Field(
        default=200, ge=1, description="Requests in flight to the external API at most."
    )
    sender_min_concurrency: int = Field(
        default=8,
        ge=1,
        description="Requests in flight at the least while the API's latency rises: between"
        " this (or HERALD_SENDER_CONCURRENCY if lower) and HERALD_SENDER_CONCURRENCY the"
        " limit follows its latency (equal: fixed).",
    )
    sender_transport: Transport = Field(
        default=Transport.reqwest,
        description="HTTP client of the external API: reqwest (pyreqwest, leanest) or aiohttp.",
    )
    sender_request_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds one request may take at most (never past end_at).",
    )
    sender_min_request_timeout: float = Field(
        default=2.0,
        gt=0,
        description="Lower bound of the request timeout learned from the API's answer times.",
    )
    sender_inprocess_attempts: int = Field(
        default=3, ge=1, description="Attempts per delivery of a command before deferring."
    )
    sender_max_attempts: int = Field(
        default=12, ge=1, description="HTTP attempts per message in all before it fails."
    )
    sender_breaker_window: int = Field(
        default=100, ge=1, description="Last answers the circuit judges the failure rate over."
    )
    sender_breaker_failure_rate: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of failures in the window that opens the circuit.",
    )
    sender_breaker_cooldown: float = Field(
        default=5.0, gt=0, description="Seconds the circuit stays open before a probe."
    )
    sender_breaker_max_cooldown: float = Field(
        default=60.0, gt=0, description="Upper bound of the doubling cool-down."
    )
    sender_drain_seconds: float = Field(
        default=8.0, ge=0, description="On shutdown, how long in-flight commands may finish."
    )
    probe_rate_limit: float = Field(
        default=0.0,
        ge=0,
        description="Requests/s to the external API of all senders together (0: no limit);"
        " shared through PostgreSQL, lowered while the API answers 429.",
    )
    sender_metrics_port: int = Field(
        default=9102, ge=0, le=65535, description="Port of /metrics (0: off)."
    )

    @model_validator(mode="after")
    def _floor_below_ceiling(self) -> "SenderSettings":
        # The default floor gives way to a lower ceiling; a floor set above it is an error.
        if (
            "sender_min_concurrency" in self.model_fields_set
            and self.sender_min_concurrency > self.sender_concurrency
        ):
            raise ValueError(
                "HERALD_SENDER_MIN_CONCURRENCY must not exceed HERALD_SENDER_CONCURRENCY"
                f" ({self.sender_min_concurrency} > {self.sender_concurrency})"
            )
        return self


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
    # uvloop: about a fifth less CPU per message than asyncio's own loop (make bench).
    uvloop.run(_serve(settings))


if __name__ == "__main__":
    main()
