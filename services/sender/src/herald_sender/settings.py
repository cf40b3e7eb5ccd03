"""The sender's settings: ``HERALD_*`` variables (or ``.env``), read once at start."""

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from herald_common.settings import HeraldSettings, ProbeSettings
from herald_sender.probe_client import Transport


class SenderSettings(HeraldSettings, ProbeSettings):
    model_config = SettingsConfigDict(
        env_prefix="HERALD_", env_file=".env", extra="ignore", frozen=True
    )

    # A command is acked when all its messages are done, so one hanging or retrying
    # message holds its command: enough commands keep the request slots busy meanwhile
    # (README, Performance: choices measured).
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
        default=5.0, gt=0, description="Seconds the circuit stays open before a trial request."
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
