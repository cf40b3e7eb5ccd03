"""Dispatch tokens and leases on ledger rows: exactly-once dispatch, lost commands re-sent.

The dispatcher commits a row ``queued`` with the token of the command it is about to
publish and a lease; only a command carrying the row's current token may send it. A
row whose lease runs out (its command was lost) goes back to ``scheduled``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("dispatch_token", postgresql.UUID(as_uuid=True)))
    op.add_column("messages", sa.Column("lease_until", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_messages_lease_until",
        "messages",
        ["lease_until"],
        postgresql_where=sa.text("status IN ('queued', 'retrying')"),
    )
    # Rows queued before this migration carry no token, which their commands (none
    # either) still match; should such a command be lost, its rows go back to the
    # dispatcher an hour on.
    op.execute(
        "UPDATE messages SET lease_until = now() + interval '1 hour'"
        " WHERE status IN ('queued', 'retrying')"
    )


def downgrade() -> None:
    op.drop_index("ix_messages_lease_until", table_name="messages")
    op.drop_column("messages", "lease_until")
    op.drop_column("messages", "dispatch_token")
