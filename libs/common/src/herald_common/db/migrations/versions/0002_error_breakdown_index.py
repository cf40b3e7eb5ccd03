"""Index for a mailing's error breakdown (GET /mailings/{id}/stats).

Without it the breakdown scans every message of the mailing: about 20 ms at 100k
rows, measured by `make bench`, against 0.5 ms with it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_mailing_id_error_class",
        "messages",
        ["mailing_id", "error_class"],
        postgresql_where=sa.text("error_class IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_mailing_id_error_class", table_name="messages")
