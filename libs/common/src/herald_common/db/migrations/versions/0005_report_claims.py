"""The daily report: a claim per report date, the reporter's first start, finished_at index.

Each report date gets one ``report_claims`` row, taken and re-taken by a single
``INSERT … ON CONFLICT DO UPDATE … WHERE`` whose condition is the lease: any number of
reporter replicas send each day's report once. ``report_origin`` holds one row, written
by the reporter's first start, so that catch-up never reports days before it. The
report reads the messages that reached a final status during a day; the partial index
on ``finished_at`` serves that range without scanning the ledger, and leaves unsent rows
(the bulk of a materialised mailing) out of it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLAIM_STATES = "'sending', 'deferred', 'sent', 'rejected'"


def upgrade() -> None:
    op.create_table(
        "report_claims",
        sa.Column("report_date", sa.Date(), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("edition", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "claimed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(f"state IN ({CLAIM_STATES})", name=op.f("ck_report_claims_state")),
    )
    op.create_table(
        "report_origin",
        sa.Column("singleton", sa.Boolean(), server_default=sa.true(), primary_key=True),
        sa.Column(
            "first_started_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.CheckConstraint("singleton", name=op.f("ck_report_origin_singleton")),
    )
    op.create_index(
        "ix_messages_finished_at",
        "messages",
        ["finished_at"],
        postgresql_where=sa.text("finished_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_finished_at", table_name="messages")
    op.drop_table("report_origin")
    op.drop_table("report_claims")
