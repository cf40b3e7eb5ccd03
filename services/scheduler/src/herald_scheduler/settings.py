"""The scheduler's settings: the shared pieces plus its own knobs, all from ``HERALD_*``."""

from pydantic import Field

from herald_common.settings import HeraldSettings


class ScheduleSettings(HeraldSettings):
    """What the scheduler needs; built once in ``main`` and passed down."""

    send_batch_size: int = Field(
        default=100, ge=1, le=10_000, description="Messages per send command (one mailing each)."
    )
    dispatch_interval: float = Field(
        default=0.25,
        gt=0,
        description="Longest pause, in seconds, between two looks for due messages.",
    )
    dispatch_claim: int = Field(
        default=2000, ge=1, description="Due messages claimed per dispatcher transaction."
    )
    dispatch_lease: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Seconds a published send command holds its messages before a sender takes it;"
            " a command lost in the broker is sent again this long after its dispatch."
        ),
    )
    dispatch_max_queued: int = Field(
        default=20_000,
        ge=1,
        description=(
            "Messages queued at most at any time; due ones beyond wait as scheduled, so"
            " that no command waits in the broker longer than its lease."
        ),
    )
    reconcile_interval: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between sweeps for mailings not yet reconciled at their revision.",
    )
    sweep_interval: float = Field(
        default=1.0, gt=0, description="Seconds between expiry sweeps of ended mailings."
    )
    materialise_chunk_size: int = Field(
        default=50_000, ge=1, description="Clients materialised per transaction."
    )
    ledger_batch_size: int = Field(
        default=1000, ge=1, description="Status outcomes applied per ledger transaction at most."
    )
    ledger_batch_wait: float = Field(
        default=0.05,
        gt=0,
        description="Seconds the ledger writer waits for more outcomes before applying a batch.",
    )
    event_concurrency: int = Field(
        default=4, ge=1, description="Domain events handled at the same time."
    )
    scheduler_metrics_port: int = Field(
        default=9101, ge=0, description="Port of the scheduler's /metrics; 0 turns it off."
    )
