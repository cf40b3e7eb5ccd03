"""The client journal: an entry per client changed since a reconcile last covered it.

Client events can be lost (a purged queue, a dead-lettered delivery, a broker lost), and
a deleted client leaves no row behind to carry a revision, so the api writes an entry
here in the same transaction as every client change. The scheduler removes it once a
reconcile has covered the change, and reconciles the entries that stay too long.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "client_changes",
        # No foreign key: the entry of a deleted client must outlive the client's row.
        sa.Column("client_id", sa.BigInteger(), autoincrement=False, primary_key=True),
        sa.Column("revision", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column(
            "pending_since",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
    )
    # The catch-up takes the oldest entries first.
    op.create_index(
        "ix_client_changes_pending_since", "client_changes", ["pending_since", "client_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_client_changes_pending_since", table_name="client_changes")
    op.drop_table("client_changes")
