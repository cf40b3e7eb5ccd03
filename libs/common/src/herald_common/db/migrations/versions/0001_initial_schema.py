"""Initial schema: clients, mailings, the message ledger, counters, outbox, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "'scheduled', 'queued', 'retrying', 'sent', 'failed', 'expired', 'cancelled'"


def _timestamps() -> list[sa.Column[datetime]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("phone", sa.String(11), nullable=False),
        sa.Column("operator_code", sa.String(3), nullable=False),
        sa.Column("tag", sa.String(64), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        *_timestamps(),
        sa.CheckConstraint("phone ~ '^7[0-9]{10}$'", name=op.f("ck_clients_phone_format")),
        sa.CheckConstraint(
            "operator_code ~ '^[0-9]{3}$'", name=op.f("ck_clients_operator_code_format")
        ),
        sa.UniqueConstraint("phone", name=op.f("uq_clients_phone")),
    )
    op.create_index("ix_clients_operator_code_id", "clients", ["operator_code", "id"])
    op.create_index("ix_clients_tag_id", "clients", ["tag", "id"])

    op.create_table(
        "mailings",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("filter_operator_codes", postgresql.ARRAY(sa.String(3)), nullable=True),
        sa.Column("filter_tags", postgresql.ARRAY(sa.String(64)), nullable=True),
        sa.Column("send_window_start", sa.Time(), nullable=True),
        sa.Column("send_window_end", sa.Time(), nullable=True),
        sa.Column("revision", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("reconciled_revision", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=True),
        *_timestamps(),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("start_at < end_at", name=op.f("ck_mailings_frame_order")),
        sa.CheckConstraint(
            "(send_window_start IS NULL) = (send_window_end IS NULL)"
            " AND (send_window_start IS NULL OR send_window_start <> send_window_end)",
            name=op.f("ck_mailings_send_window_shape"),
        ),
        sa.CheckConstraint("char_length(text) BETWEEN 1 AND 1000", name=op.f("ck_mailings_text")),
    )
    op.create_index(
        "ix_mailings_unreconciled",
        "mailings",
        ["id"],
        postgresql_where=sa.text("reconciled_revision < revision"),
    )

    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column(
            "mailing_id",
            sa.BigInteger(),
            sa.ForeignKey("mailings.id", name=op.f("fk_messages_mailing_id_mailings")),
            nullable=False,
        ),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("phone", sa.String(11), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("error_class", sa.String(32), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.UniqueConstraint("mailing_id", "client_id", name="uq_messages_mailing_id_client_id"),
        sa.CheckConstraint(f"status IN ({STATUSES})", name=op.f("ck_messages_status")),
    )
    op.create_index(
        "ix_messages_due", "messages", ["due_at"], postgresql_where=sa.text("status = 'scheduled'")
    )
    op.create_index("ix_messages_mailing_id_status_id", "messages", ["mailing_id", "status", "id"])
    op.create_index(
        "ix_messages_client_id_unsent",
        "messages",
        ["client_id"],
        postgresql_where=sa.text("status IN ('scheduled', 'queued', 'retrying')"),
    )

    op.create_table(
        "mailing_counters",
        sa.Column(
            "mailing_id",
            sa.BigInteger(),
            sa.ForeignKey("mailings.id", name=op.f("fk_mailing_counters_mailing_id_mailings")),
            primary_key=True,
        ),
        *[
            sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)
            for name in (
                "scheduled",
                "queued",
                "retrying",
                "sent",
                "failed",
                "expired",
                "cancelled",
                "attempts",
            )
        ],
        sa.Column("first_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("correlation_id", sa.String(64), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["id"], postgresql_where=sa.text("published_at IS NULL")
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("mailing_counters")
    op.drop_index("ix_messages_client_id_unsent", table_name="messages")
    op.drop_index("ix_messages_mailing_id_status_id", table_name="messages")
    op.drop_index("ix_messages_due", table_name="messages")
    op.drop_table("messages")
    op.drop_index("ix_mailings_unreconciled", table_name="mailings")
    op.drop_table("mailings")
    op.drop_index("ix_clients_tag_id", table_name="clients")
    op.drop_index("ix_clients_operator_code_id", table_name="clients")
    op.drop_table("clients")
