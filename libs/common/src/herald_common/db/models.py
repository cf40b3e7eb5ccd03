"""SQLAlchemy models of herald's schema; the migrations in ``migrations/`` create it.

Who owns which table, and the few writes across owners, are in docs/architecture.md
(Table ownership): the api owns clients, mailings, the outbox, API keys, idempotency
keys and the client journal; the scheduler the message ledger and the per-mailing
counters; the sender the rate limits; the reporter the report claims and its origin.
"""

import uuid
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    Time,
    UniqueConstraint,
    func,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from herald_common.domain import MessageStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

PHONE_LENGTH = 11
TAG_MAX_LENGTH = 64
TIMEZONE_MAX_LENGTH = 64
MAILING_TEXT_MAX_LENGTH = 1000

_STATUS_VALUES = ", ".join(f"'{s.value}'" for s in MessageStatus)
REPORT_CLAIM_STATES = ("sending", "deferred", "sent", "rejected")
_CLAIM_STATE_VALUES = ", ".join(f"'{state}'" for state in REPORT_CLAIM_STATES)


def _now() -> Any:
    return func.now()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    phone: Mapped[str] = mapped_column(String(PHONE_LENGTH), unique=True)
    operator_code: Mapped[str] = mapped_column(String(3))
    tag: Mapped[str | None] = mapped_column(String(TAG_MAX_LENGTH))
    timezone: Mapped[str] = mapped_column(String(TIMEZONE_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (
        CheckConstraint("phone ~ '^7[0-9]{10}$'", name="phone_format"),
        CheckConstraint("operator_code ~ '^[0-9]{3}$'", name="operator_code_format"),
        Index("ix_clients_operator_code_id", "operator_code", "id"),
        Index("ix_clients_tag_id", "tag", "id"),
    )


class Mailing(Base):
    __tablename__ = "mailings"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    start_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # NULL means "no filter on this attribute"; a list means "one of these".
    filter_operator_codes: Mapped[list[str] | None] = mapped_column(ARRAY(String(3)))
    filter_tags: Mapped[list[str] | None] = mapped_column(ARRAY(String(TAG_MAX_LENGTH)))
    # Client-local wall-clock window; both NULL means "any time of day".
    send_window_start: Mapped[time | None] = mapped_column(Time)
    send_window_end: Mapped[time | None] = mapped_column(Time)
    # At most this many of its messages a second, across all senders; NULL: no own limit.
    max_rate: Mapped[float | None] = mapped_column(Float)
    # Bumped by every change; the scheduler reconciles until it has caught up.
    revision: Mapped[int] = mapped_column(Integer, server_default=sql_text("1"))
    reconciled_revision: Mapped[int] = mapped_column(Integer, server_default=sql_text("0"))
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set while an operator has paused the mailing: nothing is dispatched or sent.
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when the mailing was deleted: the API answers 404; its ledger rows stay.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("start_at < end_at", name="frame_order"),
        CheckConstraint(
            "(send_window_start IS NULL) = (send_window_end IS NULL)"
            " AND (send_window_start IS NULL OR send_window_start <> send_window_end)",
            name="send_window_shape",
        ),
        CheckConstraint(f"char_length(text) BETWEEN 1 AND {MAILING_TEXT_MAX_LENGTH}", name="text"),
        CheckConstraint("max_rate IS NULL OR max_rate BETWEEN 0.01 AND 100000", name="max_rate"),
        Index(
            "ix_mailings_unreconciled",
            "id",
            postgresql_where=sql_text("reconciled_revision < revision"),
        ),
    )


class Message(Base):
    """The ledger: one row per (mailing, client) that matched the mailing's filter."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    mailing_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("mailings.id"))
    # No foreign key: a deleted client's messages stay in the ledger for statistics.
    client_id: Mapped[int] = mapped_column(BigInteger)
    phone: Mapped[str] = mapped_column(String(PHONE_LENGTH))
    timezone: Mapped[str] = mapped_column(String(TIMEZONE_MAX_LENGTH))
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default=sql_text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    error_class: Mapped[str | None] = mapped_column(String(32))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The command that may send this row now (see herald_scheduler.dispatcher); a
    # command with another token is a stale copy and sends nothing.
    dispatch_token: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # Until when that command holds the row; past it, the row goes back to scheduled.
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (
        UniqueConstraint("mailing_id", "client_id", name="uq_messages_mailing_id_client_id"),
        CheckConstraint(f"status IN ({_STATUS_VALUES})", name="status"),
        # Serves the dispatcher's "due and not yet queued" claim.
        Index("ix_messages_due", "due_at", postgresql_where=sql_text("status = 'scheduled'")),
        Index("ix_messages_mailing_id_status_id", "mailing_id", "status", "id"),
        # Serves a mailing's error breakdown in its statistics.
        Index(
            "ix_messages_mailing_id_error_class",
            "mailing_id",
            "error_class",
            postgresql_where=sql_text("error_class IS NOT NULL"),
        ),
        Index(
            "ix_messages_lease_until",
            "lease_until",
            postgresql_where=sql_text("status IN ('queued', 'retrying')"),
        ),
        Index(
            "ix_messages_client_id_unsent",
            "client_id",
            postgresql_where=sql_text("status IN ('scheduled', 'queued', 'retrying')"),
        ),
        # Serves the daily report: the messages that reached a final status in a day.
        Index(
            "ix_messages_finished_at",
            "finished_at",
            postgresql_where=sql_text("finished_at IS NOT NULL"),
        ),
    )


class MailingCounters(Base):
    """Per-mailing message counts by status, kept in the same transaction as the ledger."""

    __tablename__ = "mailing_counters"

    mailing_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("mailings.id"), primary_key=True)
    scheduled: Mapped[int] = mapped_column(BigInteger, server_default=sql_text("0"))
    queued: Mapped[int] = mapped_column(BigInteger, server_default=sql_text("0"))
    retrying: Mapped[int] = mapped_column(BigInteger, server_default=sql_text("0"))
    sent: Mapped[int] = mapped_column(BigInteger, server_default=sql_text("0"))
    failed: Mapped[int] = mapped_column(BigInteger, server_default=sql_text("0"))
    expired: Mapped[int] = mapped_column(BigInteger, server_default=sql_text("0"))
    cancelled: Mapped[int] = mapped_column(BigInteger, server_default=sql_text("0"))
    attempts: Mapped[int] = mapped_column(BigInteger, server_default=sql_text("0"))
    first_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxEvent(Base):
    """Domain events written in the same transaction as the change they describe."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    correlation_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_outbox_unpublished", "id", postgresql_where=sql_text("published_at IS NULL")),
    )


class ApiKey(Base):
    """An integrator's API key. Only a SHA-256 of the secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ClientChange(Base):
    """The client journal: one entry per client changed since a reconcile last covered it.

    The api writes it in the same transaction as every client change, deletes included
    (a deleted client has no row left to carry a revision); the scheduler removes it
    once a reconcile that read the change has committed, and reconciles what stays.
    """

    __tablename__ = "client_changes"

    # No foreign key: the entry of a deleted client must outlive the client's row.
    client_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Drawn anew by every change, never reused: a reconcile removes the entry only if it
    # still holds the revision read before the reconcile began.
    revision: Mapped[int] = mapped_column(BigInteger, Identity())
    # When the entry was first written, or last taken by the catch-up pass.
    pending_since: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (
        # The catch-up pass takes the oldest entries first.
        Index("ix_client_changes_pending_since", "pending_since", "client_id"),
    )


class ReportClaim(Base):
    """One day's report: who sends it, until when, and how it ended.

    ``sending`` holds a lease (``lease_until``); ``deferred`` waits until ``lease_until``
    after the SMTP server stayed unreachable; ``sent`` and ``rejected`` (a 5xx answer) are
    settled: only ``herald report send --force`` takes them again.
    """

    __tablename__ = "report_claims"

    report_date: Mapped[date] = mapped_column(Date, primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    # Which replica and claim holds it (host, pid, a random part): only that one records.
    holder: Mapped[str] = mapped_column(String(128))
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Claims taken so far (each a try to send).
    attempts: Mapped[int] = mapped_column(Integer, server_default=sql_text("1"))
    # Bumped by a forced resend of a sent report, so that it gets a Message-ID of its own.
    edition: Mapped[int] = mapped_column(Integer, server_default=sql_text("1"))
    message_id: Mapped[str | None] = mapped_column(String(255))
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (CheckConstraint(f"state IN ({_CLAIM_STATE_VALUES})", name="state"),)


class ReportOrigin(Base):
    """The reporter's first start: catch-up never reports a day before it. One row."""

    __tablename__ = "report_origin"

    singleton: Mapped[bool] = mapped_column(
        Boolean, primary_key=True, server_default=sql_text("true")
    )
    first_started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=_now()
    )

    __table_args__ = (CheckConstraint("singleton", name="singleton"),)


class RateLimit(Base):
    """A rate limit shared by every sender (herald_sender.rate_limit): GCRA's state."""

    __tablename__ = "rate_limits"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The theoretical arrival time: when the next request may start.
    tat: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())
    # Requests/s in force: the configured limit, lowered while the API answers 429.
    rate: Mapped[float] = mapped_column(Float)
    throttled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("rate > 0", name="rate"),)


class IdempotencyKey(Base):
    """A POST's ``Idempotency-Key`` and the response it got, per API key, so that a retry
    gets that response again instead of a second entity (herald_api.idempotency).

    Written in the transaction that created the entity; kept for HERALD_IDEMPOTENCY_KEY_TTL.
    """

    __tablename__ = "idempotency_keys"

    api_key_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    # SHA-256 (hex) of the method, path, query, content type and body: a repeat must match.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    # The body as sent, byte for byte (JSON text): JSONB would reorder its keys.
    response_body: Mapped[str] = mapped_column(Text)
    response_headers: Mapped[dict[str, str]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=_now())

    __table_args__ = (
        # The bounded cleanup takes the oldest expired keys first.
        Index("ix_idempotency_keys_created_at", "created_at"),
    )
