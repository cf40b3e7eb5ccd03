"""The reporter's settings: the shared pieces plus the report's and the SMTP server's knobs."""

import re
from datetime import time
from enum import StrEnum
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from herald_common.settings import HeraldSettings

# Loose on purpose: the SMTP server is the judge of an address; this catches a list
# written with the wrong separator or a missing @.
_ADDRESS = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+")

# A lease must outlast one whole send (every retry plus the last attempt's timeout) with
# this margin for reading the ledger and recording the outcome.
LEASE_MARGIN_SECONDS = 60.0


class SmtpTls(StrEnum):
    """How the connection to the SMTP server is protected."""

    none = "none"  # plain text: a local sink or catcher only
    starttls = "starttls"  # plain connect, then STARTTLS, required (submission, port 587)
    implicit = "implicit"  # TLS from the first byte (SMTPS, port 465)


class ReporterSettings(HeraldSettings):
    """What the reporter needs; built once by its CLI and passed down."""

    report_timezone: str = Field(
        default="UTC",
        description="IANA time zone whose midnight-to-midnight days the report covers and "
        "whose clock HERALD_REPORT_TIME is read on.",
    )
    report_time: time = Field(
        default=time(8, 0),
        description="Local time (HH:MM) in HERALD_REPORT_TIMEZONE at which the report for the "
        "day before is sent.",
    )
    report_recipients: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses the report goes to; required to send.",
    )
    report_catch_up_days: int = Field(
        default=7,
        ge=1,
        le=366,
        description="How many days back a reporter that was down still sends missed reports "
        "(never for days before its first start); older ones are left to `herald report send`.",
    )
    report_lease: float = Field(
        default=600.0,
        gt=0,
        description="Seconds a replica holds a day's report claim while sending; after that "
        "another replica may send it (the holder died).",
    )
    report_retry_interval: float = Field(
        default=300.0,
        gt=0,
        description="Seconds to wait before trying a report again after the SMTP server "
        "stayed unreachable (or answered 4xx) for HERALD_SMTP_RETRY_FOR.",
    )
    admin_url: str | None = Field(
        default=None,
        description="Base URL of the admin UI (e.g. https://herald.example.com/admin); when "
        "set, each mailing in the report links to {url}/mailings/{id}.",
    )
    smtp_host: str = Field(default="127.0.0.1", description="SMTP server host name.")
    smtp_port: int = Field(
        default=8025,
        ge=1,
        le=65535,
        description="SMTP server port (8025: `herald-mail-sink`; 587 with STARTTLS, 465 "
        "implicit TLS).",
    )
    smtp_tls: SmtpTls = Field(
        default=SmtpTls.none,
        description="'starttls' (required upgrade), 'implicit' (TLS from connect) or 'none' "
        "(plain text, for a local sink only).",
    )
    smtp_ca_file: str | None = Field(
        default=None,
        description="PEM bundle of the CAs that may sign the SMTP server's certificate; unset: "
        "the system's trust store.",
    )
    smtp_username: str | None = Field(
        default=None, description="SMTP AUTH user name; unset or empty: no authentication."
    )
    smtp_password: SecretStr | None = Field(
        default=None, description="SMTP AUTH password (never logged)."
    )
    smtp_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds one attempt to hand the report to the SMTP server may take, "
        "from connect to the end of DATA.",
    )
    smtp_retry_for: float = Field(
        default=120.0,
        ge=0,
        description="Seconds to keep retrying (with backoff) while the SMTP server is "
        "unreachable or answers 4xx; then the report waits HERALD_REPORT_RETRY_INTERVAL.",
    )
    smtp_from: str = Field(
        default="herald@localhost",
        description="Sender address of the report; its domain also names the Message-ID.",
    )
    reporter_metrics_port: int = Field(
        default=9120, ge=0, description="Port of the reporter's /metrics; 0 turns it off."
    )

    @field_validator("report_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, e.g. Europe/Berlin)"
            ) from None
        return value

    @field_validator("report_recipients", mode="before")
    @classmethod
    def _split_recipients(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("report_recipients")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        bad = [address for address in value if not _ADDRESS.fullmatch(address)]
        if bad:
            raise ValueError(f"not an email address: {', '.join(map(repr, bad))}")
        return value

    @field_validator("smtp_from")
    @classmethod
    def _from_address(cls, value: str) -> str:
        if not _ADDRESS.fullmatch(value):
            raise ValueError(f"not an email address: {value!r}")
        return value

    @field_validator("smtp_username", "smtp_ca_file", "admin_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose passes `${HERALD_SMTP_USERNAME:-}` through as an empty string.
        return None if value == "" else value

    @field_validator("smtp_password", mode="before")
    @classmethod
    def _empty_password_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> Self:
        needed = self.smtp_retry_for + self.smtp_timeout + LEASE_MARGIN_SECONDS
        if self.report_lease < needed:
            raise ValueError(
                f"HERALD_REPORT_LEASE ({self.report_lease:g} s) must be at least "
                f"HERALD_SMTP_RETRY_FOR + HERALD_SMTP_TIMEOUT + {LEASE_MARGIN_SECONDS:g} s "
                f"({needed:g} s): a replica still sending must not lose its claim"
            )
        return self

    @model_validator(mode="after")
    def _credentials_in_pairs(self) -> Self:
        if self.smtp_username and self.smtp_password is None:
            raise ValueError("HERALD_SMTP_USERNAME is set but HERALD_SMTP_PASSWORD is not")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.report_timezone)
