"""Operator controls on a mailing: paused, and deleted as distinct from cancelled.

``paused_at`` set: nothing of the mailing is dispatched or sent until it is cleared; its
unsent messages keep their rows and state. ``cancelled_at`` stays what stops a mailing for
good (its unsent messages become ``cancelled``); ``deleted_at`` marks a mailing the API no
longer shows (404), whose ledger rows stay for the statistics.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("mailings", sa.Column("paused_at", sa.DateTime(timezone=True)))
    op.add_column("mailings", sa.Column("deleted_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("mailings", "deleted_at")
    op.drop_column("mailings", "paused_at")
