"""Settings pieces shared by every service, read from ``HERALD_*`` variables and ``.env``.

Each service composes its own ``BaseSettings`` from these pieces, builds it once in
``main`` and passes it down; nothing reads the environment at import time.
"""

from enum import StrEnum

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class QueueType(StrEnum):
    classic = "classic"
    quorum = "quorum"


class HeraldSettings(BaseSettings):
    """What every service needs: where PostgreSQL and RabbitMQ are, and how to log."""

    model_config = SettingsConfigDict(
        env_prefix="HERALD_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        default="postgresql+psycopg://postgres@127.0.0.1:5432/herald",
        description="SQLAlchemy URL of the PostgreSQL database (psycopg 3 driver).",
    )
    amqp_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        description="AMQP URL of RabbitMQ, including the vhost.",
    )
    queue_type: QueueType = Field(
        default=QueueType.classic,
        description="RabbitMQ queue type: classic on a single node, quorum on a cluster.",
    )
    log_level: str = Field(default="info", description="Minimum log level.")
    log_format: str = Field(
        default="auto", description="'json', 'console', or 'auto' (console on a TTY, else JSON)."
    )
    db_pool_size: int = Field(default=5, ge=1, description="Connections kept per process.")
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address a worker's metrics port binds; containers set 0.0.0.0 so that "
        "Prometheus and the orchestrator's probes reach it.",
    )


class ProbeSettings(BaseSettings):
    """Where the external send API is and how to authenticate to it."""

    model_config = SettingsConfigDict(
        env_prefix="HERALD_", env_file=".env", extra="ignore", frozen=True
    )

    probe_url: str = Field(
        default="http://127.0.0.1:8090/v1",
        description="Base URL of the external send API; herald calls {probe_url}/send/{id}.",
    )
    probe_token: SecretStr = Field(
        default=SecretStr("dev-probe-token"),
        description="Bearer token (JWT) for the external send API.",
    )
